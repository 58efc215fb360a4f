"""Hugging Face datasets in and out: save_to_disk -> annotate -> save_to_disk keeps every column and its type."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value, load_from_disk

from autoannotator import Annotator, AnnotatorError, Task
from autoannotator.hf_datasets import dataset_card
from autoannotator.io import read_table
from tests.conftest import EXAMPLE

LABELS = ["negative", "neutral", "positive"]
FEATURES = Features({
    "id": Value("string"), "text": Value("string"), "gold": ClassLabel(names=LABELS), "label": ClassLabel(names=LABELS),
    "score": Value("int32"), "weight": Value("float32"), "tags": Sequence(Value("string")), "flag": Value("bool"),
})  # fmt: skip


def tweets_dataset(frame: pd.DataFrame, n: int) -> Dataset:
    """n tweets with columns of many types; `label` (a ClassLabel) clashes with an output column."""
    rows = frame.iloc[:n]
    gold = [LABELS.index(v) for v in rows["gold_label"]]
    return Dataset.from_dict(
        {"id": rows["id"].tolist(), "text": rows["text"].tolist(), "gold": gold, "label": gold,
         "score": list(range(n)), "weight": [i / 4 for i in range(n)], "tags": [["a", str(i)][: i % 3] for i in range(n)],
         "flag": [i % 2 == 0 for i in range(n)]},
        features=FEATURES,
    )  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoannotator", *args], capture_output=True, text=True, timeout=300,
                          env=os.environ | (env or {}))  # fmt: skip


def test_round_trip_keeps_every_column_and_its_type(task: Task, tweets_frame: pd.DataFrame, seed_frame: pd.DataFrame, tmp_path: Path) -> None:
    source = tweets_dataset(tweets_frame, 120)
    source.save_to_disk(str(tmp_path / "in"))
    annotator = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="gold:gold", run_dir=tmp_path / "run")
    result = annotator.annotate(tmp_path / "in", seed=seed_frame, output=tmp_path / "out")
    labeled = load_from_disk(str(tmp_path / "out"))
    # every input column with its feature (the clashing `label` kept as input_label), then the output columns
    expected = {("input_label" if k == "label" else k): v for k, v in FEATURES.items()}
    assert {k: labeled.features[k] for k in expected} == expected
    assert labeled.column_names[: len(expected)] == list(expected)
    assert labeled.features["uncertainty"] == Value("float64") and labeled.features["label_source"] == Value("string")
    assert labeled.features["reason"] == Value("string")
    for column in ("id", "text", "gold", "score", "weight", "tags", "flag"):
        assert labeled[column] == source[column], column
    assert labeled["input_label"] == source["label"]
    # the ClassLabel gold column was read as label names: the gold reviewer answered every hard item
    sources = set(labeled["label_source"])
    assert "gold" in sources and "unresolved" not in sources
    reviewed = [(g, y) for g, y, s in zip(labeled["gold"], labeled["label"], labeled["label_source"]) if s == "gold"]
    assert all(LABELS[g] == y for g, y in reviewed)
    assert labeled.num_rows == result.summary.n_items == 120
    # annotating again (resume) replaces the folder with the same content
    annotator.annotate(tmp_path / "in", seed=seed_frame, output=tmp_path / "out")
    assert load_from_disk(str(tmp_path / "out"))["label"] == labeled["label"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out", "run"]  # no temporary folder left


def test_dataset_dict_needs_a_split(tweets_frame: pd.DataFrame, tmp_path: Path) -> None:
    DatasetDict({"train": tweets_dataset(tweets_frame, 10), "test": tweets_dataset(tweets_frame.iloc[10:], 6)}).save_to_disk(str(tmp_path / "dd"))
    assert read_table(tmp_path / "dd", split="test")["id"].tolist() == tweets_frame["id"].iloc[10:16].tolist()
    with pytest.raises(AnnotatorError, match=r"splits \['train', 'test'\]: name one with --split"):
        read_table(tmp_path / "dd")
    with pytest.raises(AnnotatorError, match="no split 'dev'"):
        read_table(tmp_path / "dd", split="dev")
    (tmp_path / "plain").mkdir()
    with pytest.raises(AnnotatorError, match="not one written by Dataset.save_to_disk"):
        read_table(tmp_path / "plain")
    with pytest.raises(AnnotatorError, match="--split applies to a Hugging Face datasets folder"):
        read_table(EXAMPLE / "seed.csv", split="train")


@pytest.mark.slow
def test_cli_split_in_datasets_folder_out_and_an_unreachable_hub(tweets_frame: pd.DataFrame, tmp_path: Path) -> None:
    DatasetDict({"train": tweets_dataset(tweets_frame, 10), "test": tweets_dataset(tweets_frame.iloc[10:], 80)}).save_to_disk(str(tmp_path / "dd"))
    args = ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tmp_path / "dd"), "--seed", str(EXAMPLE / "seed.csv"),
            "--specialists", "tfidf,lexicon", "--reviewer", "gold:gold", "--quiet"]  # fmt: skip
    missing = cli(*args, "--output", str(tmp_path / "o1"))
    assert missing.returncode == 2 and "name one with --split" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    # the Hub is out of reach (offline mode): one line, exit 2, and the output is written all the same
    pushed = cli(*args, "--split", "test", "--output", str(tmp_path / "labeled"), "--push-to-hub", "someone/tweets",
                 env={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert pushed.returncode == 2, pushed.stderr
    assert "push to the Hub repo 'someone/tweets' failed" in pushed.stderr and "the output file is written" in pushed.stderr
    labeled = load_from_disk(str(tmp_path / "labeled"))
    assert labeled.num_rows == 80 and labeled["id"] == tweets_frame["id"].iloc[10:90].tolist()
    assert labeled.features["gold"] == ClassLabel(names=LABELS)


def test_dataset_card_lists_task_specialists_routes_reviewer_and_cost(task: Task) -> None:
    usage = {"deepseek-chat": {"calls": 12, "cache_hits": 3, "failed": 0, "prompt_tokens": 4200, "completion_tokens": 60,
                               "cost_usd": 0.0123, "seconds": 8.0}}  # fmt: skip
    card = dataset_card(task=task, specialists=["tfidf", "lexicon"], reviewer="llm (deepseek-chat)",
                        counts={"consensus": 70, "llm": 25, "unresolved": 5}, llm=usage, repo="me/tweets")  # fmt: skip
    assert card.startswith("---\ntask_categories:\n- text-classification\n")
    for text in ("# me/tweets", task.instruction, "- `negative`: ", "specialists: tfidf, lexicon", "reviewer: llm (deepseek-chat)",
                 "| consensus | 70 | 70.0% |", "| llm | 25 | 25.0% |", "| deepseek-chat | 12 | 3 | 4,200 | 60 | 0.0123 |"):  # fmt: skip
        assert text in card, text
