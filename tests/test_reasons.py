"""The `reason` column: every unresolved item says why, in the output file, the summary and --summary-json."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.io import read_table
from autoannotator.reasons import REASONS, unresolved_reason
from tests.test_cli import annotate_args, cli

FAST = ["tfidf", "lexicon"]


def test_every_unresolved_item_says_why_in_the_file_and_the_summary(task: Task, small_tweets: pd.DataFrame, seed_frame, tmp_path: Path) -> None:
    frame = small_tweets.iloc[:80].reset_index(drop=True)
    frame.loc[3, "text"] = ""
    frame.loc[5, "text"] = "   "
    first = Annotator(task, specialists=FAST, reviewer="none", run_dir=tmp_path / "run").annotate(
        frame, seed=seed_frame, output=tmp_path / "first.csv"
    )
    written = read_table(tmp_path / "first.csv")
    assert "reason" in written.columns
    unresolved = written.label_source == "unresolved"
    assert written.loc[[3, 5], "reason"].tolist() == ["empty_text", "empty_text"]
    hard = [r for r in written.index[unresolved] if r not in (3, 5)]
    assert len(hard) >= 3
    assert written.loc[hard, "reason"].eq("no_reviewer").all()
    assert written.loc[~unresolved, "reason"].isna().all()  # a labeled item has no reason
    assert first.summary.reasons == {"no_reviewer": len(hard), "empty_text": 2}

    # The same run with a gold reviewer: one hard item has no gold value, one a value that is not a label.
    frame.loc[hard[0], "gold_label"] = None
    frame.loc[hard[1], "gold_label"] = "banana"
    second = Annotator(task, specialists=FAST, reviewer="gold:gold_label", run_dir=tmp_path / "run").annotate(
        frame, seed=seed_frame, output=tmp_path / "second.csv"
    )
    written = read_table(tmp_path / "second.csv")
    assert written.loc[hard[0], "reason"] == "gold_missing"
    assert written.loc[hard[1], "reason"] == "out_of_set"
    assert written.loc[hard[2:], "label_source"].eq("gold").all() and written.loc[hard[2:], "reason"].isna().all()
    assert second.summary.reasons == {"empty_text": 2, "gold_missing": 1, "out_of_set": 1}
    assert second.frame["reason"].fillna("").tolist() == written["reason"].fillna("").tolist()  # the file is the result


def test_an_answer_after_a_failed_one_clears_the_reason(task: Task, small_tweets: pd.DataFrame, seed_frame, tmp_path: Path) -> None:
    frame = small_tweets.iloc[:80].reset_index(drop=True)
    blanked = frame.assign(gold_label=None)
    first = Annotator(task, specialists=FAST, reviewer="gold:gold_label", run_dir=tmp_path / "run").annotate(blanked, seed=seed_frame)
    hard = first.frame.index[first.frame.label_source == "unresolved"]
    assert len(hard) and first.frame.loc[hard, "reason"].eq("gold_missing").all()
    second = Annotator(task, specialists=FAST, reviewer="gold:gold_label", run_dir=tmp_path / "run").annotate(frame, seed=seed_frame)
    assert second.frame.loc[hard, "label_source"].eq("gold").all() and second.frame["reason"].isna().all()
    assert second.summary.reasons == {}


@pytest.mark.parametrize(
    ("state", "logged", "has_reviewer", "expected"),
    [("skipped", None, True, "empty_text"), ("pending_review", None, False, "no_reviewer"),
     ("pending_review", None, True, "awaiting_review"), ("pending_review", "http_400", True, "http_400")],
)  # fmt: skip
def test_reason_of_an_item_without_a_logged_reason(state: str, logged: str | None, has_reviewer: bool, expected: str) -> None:
    assert unresolved_reason(state, logged, has_reviewer=has_reviewer) == expected
    assert expected in REASONS


def test_cli_prints_and_writes_the_count_per_reason(tmp_path: Path) -> None:
    tweets = tmp_path / "tweets.csv"
    frame = pd.read_csv(Path(__file__).parent.parent / "examples" / "tweets" / "tweets.csv", dtype=str).iloc[:60]
    frame.loc[frame.index[2], "text"] = ""
    frame.to_csv(tweets, index=False)
    run = cli(*annotate_args(tweets, tmp_path / "out.csv", "--summary-json", str(tmp_path / "s.json")))
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    out = pd.read_csv(tmp_path / "out.csv")
    assert summary["reasons"]["empty_text"] == 1
    assert summary["reasons"]["no_reviewer"] == int((out.reason == "no_reviewer").sum()) > 0
    assert sum(summary["reasons"].values()) == summary["counts"]["unresolved"]
    assert "unresolved by reason: no_reviewer" in run.stdout and "empty_text 1" in run.stdout
