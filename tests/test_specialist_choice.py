"""`--specialists` picks from the task file's entries (their options kept); a bad entry's error names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoannotator import Annotator, AnnotatorError, Task

BINARY = {"name": "polarity", "labels": [{"name": "negative"}, {"name": "positive"}]}
NEUTRAL_IGNORED = {"negative": "negative", "positive": "positive", "neutral": None}


def test_a_kind_named_alone_keeps_the_task_files_options_for_it(tmp_path: Path) -> None:
    task = Task.model_validate(BINARY | {"specialists": [{"kind": "lexicon", "options": {"label_map": NEUTRAL_IGNORED}}]})
    annotator = Annotator(task, specialists=["tfidf", "lexicon"], run_dir=tmp_path / "r")
    lexicon = next(s for s in annotator.specs if s.kind == "lexicon")
    assert lexicon.options == {"label_map": NEUTRAL_IGNORED}
    assert next(s for s in annotator.specs if s.kind == "tfidf").options == {}  # not in the task file: the bare kind


def test_a_name_picks_its_entry_and_an_ambiguous_kind_stays_bare(tmp_path: Path) -> None:
    task = Task.model_validate(BINARY | {"specialists": [
        {"kind": "tfidf", "name": "wide", "options": {"max_features": 500}},
        {"kind": "tfidf", "name": "narrow", "options": {"max_features": 50}},
    ]})  # fmt: skip
    specs = Annotator(task, specialists=["narrow", "tfidf"], run_dir=tmp_path / "r").specs
    assert [(s.display_name, s.options) for s in specs] == [("narrow", {"max_features": 50}), ("tfidf", {})]


def test_a_specialist_whose_labels_do_not_map_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match=r"specialist 'lexicon' \(lexicon\): model labels \['neutral'\] match no task label"):
        Annotator(Task.model_validate(BINARY), specialists=["tfidf", "lexicon"], run_dir=tmp_path / "r")


def test_a_missing_gold_column_is_refused_before_anything_trains(tmp_path: Path, tweets_frame, seed_frame) -> None:
    from autoannotator.store import STORE_FILE

    task = Task.model_validate({"name": "t", "labels": [{"name": "negative"}, {"name": "neutral"}, {"name": "positive"}]})
    annotator = Annotator(task, specialists=["tfidf"], reviewer="gold:input_label", run_dir=tmp_path / "r")
    with pytest.raises(AnnotatorError, match=r"gold column 'input_label' is not in the input"):
        annotator.annotate(tweets_frame.iloc[:20], seed=seed_frame)
    assert not (tmp_path / "r" / "specialists").exists() and not (tmp_path / "r" / STORE_FILE).exists()
