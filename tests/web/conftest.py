from __future__ import annotations

from pathlib import Path

import pytest

from autoannotator import Annotator, Task

INJECTION = '<script>window.pwned = true</script><img src=x onerror="window.pwned=true"> I hate <b>this</b>'


@pytest.fixture()
def run_dir(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> Path:
    """A run whose items all wait for people; the first tweet carries markup that must show as text."""
    frame = tweets_frame.iloc[:60].copy()
    frame.loc[frame.index[0], "text"] = INJECTION
    annotator = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="none", epsilon=0.0, run_dir=tmp_path / "run")
    result = annotator.annotate(frame, seed=seed_frame)
    assert (result.frame.label_source == "unresolved").all()  # epsilon 0: every item waits for a person
    return tmp_path / "run"
