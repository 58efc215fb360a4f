from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, Task
from tests.web.conftest import INJECTION


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory, tweets_frame: pd.DataFrame, seed_frame: pd.DataFrame) -> Path:
    """A finished run (tfidf + lexicon, gold reviewer on half the hard items' column, the rest unresolved) whose
    task name and texts carry markup: the report must show it as text. Returns the labeled file."""
    folder = tmp_path_factory.mktemp("hostile")
    task_data = Task.from_yaml(Path(__file__).parents[2] / "examples" / "tweets" / "task.yaml").model_dump()
    task = Task.model_validate(task_data | {"name": f"tweets {INJECTION}"})
    frame = tweets_frame.iloc[:240].copy()
    frame["gold_label"] = frame["gold_label"].where(frame.index % 2 == 0, None)  # odd rows: no gold, so hard ones stay unresolved
    frame.loc[frame.index[1], "text"] = INJECTION  # a text the specialists disagree on or not: it is in the report either way
    frame["truth"] = tweets_frame.iloc[:240]["gold_label"]
    annotator = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="gold:gold_label", run_dir=folder / "out.csv.run",
                          refine={"beta": 40, "gate_fraction": 0.25})  # fmt: skip
    annotator.annotate(frame, seed=seed_frame, output=folder / "out.csv")
    return folder / "out.csv"
