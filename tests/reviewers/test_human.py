"""Human review: the terminal loop (keys scripted), and the queue's export and import (JSONL, Label Studio)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from autoannotator import Annotator, AnnotatorError, Task
from autoannotator.review_queue import import_answers
from autoannotator.reviewers.base import ReviewItem
from autoannotator.reviewers.human import review_in_terminal
from autoannotator.store import STORE_FILE, RunStore


@pytest.fixture()
def run_with_hard_items(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    frame = tweets_frame.iloc[:40]
    Annotator(task, specialists=["tfidf", "lexicon"], reviewer="none", run_dir=tmp_path / "run").annotate(frame, seed=seed_frame)
    return tmp_path / "run", frame


def keys(sequence: str):
    it = iter(sequence)
    return lambda: next(it)


def test_terminal_keys_label_skip_undo_quit(task: Task, run_with_hard_items) -> None:
    run_dir, _ = run_with_hard_items
    store = RunStore(run_dir / STORE_FILE)
    store.start_session()
    pending = store.pending_review()
    assert len(pending) >= 4
    items = [ReviewItem(row=r.row, item_id=r.item_id, text=r.text, votes=r.votes, consensus_label=r.consensus_label) for r in pending]
    out = io.StringIO()
    # 1 -> negative on item 0; s skips item 1; 3 -> positive on item 2; u undoes item 2; 2 -> neutral on item 2; x is ignored; q quits
    stats = review_in_terminal(items, task, store, console=Console(file=out, width=100), getkey=keys("1s3u2xq"))
    assert (stats.answered, stats.skipped, stats.undone, stats.quit) == (2, 1, 1, True)
    by_row = {r.row: r for r in store.items()}
    assert (by_row[items[0].row].label, by_row[items[0].row].label_source) == ("negative", "human")
    assert by_row[items[1].row].label_source == "unresolved"  # skipped: still waiting
    assert (by_row[items[2].row].label, by_row[items[2].row].label_source) == ("neutral", "human")
    assert len(store.pending_review()) == len(pending) - 2
    assert items[0].text[:20] in out.getvalue()
    store.close()


def test_markup_in_item_text_is_shown_literally(task: Task, run_with_hard_items) -> None:
    run_dir, _ = run_with_hard_items
    store = RunStore(run_dir / STORE_FILE)
    item = ReviewItem(row=store.pending_review()[0].row, item_id="x", text="[bold red]not markup[/] <script>", votes={}, consensus_label=None)
    out = io.StringIO()
    review_in_terminal([item], task, store, console=Console(file=out, width=100), getkey=keys("q"))
    assert "[bold red]not markup[/] <script>" in out.getvalue()
    store.close()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoannotator", *args], capture_output=True, text=True, timeout=120)


def test_export_jsonl_fill_import_then_annotate_continues(task: Task, run_with_hard_items, seed_frame, tmp_path: Path) -> None:
    run_dir, frame = run_with_hard_items
    queue = tmp_path / "queue.jsonl"
    assert cli("review", "--run-dir", str(run_dir), "--export", str(queue)).returncode == 0
    records = [json.loads(line) for line in queue.read_text().splitlines()]
    assert records and all(r["label"] is None and r["labels"] == task.label_names for r in records)
    gold = dict(zip(range(len(frame)), frame.gold_label))
    for r in records[:-1]:  # the person answers all but the last item
        r["label"] = gold[r["row"]].upper()  # spelled differently: aliases and case are resolved
    queue.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    done = cli("review", "--run-dir", str(run_dir), "--import", str(queue))
    assert done.returncode == 0 and f"imported {len(records) - 1} answers" in done.stdout
    result = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="none", run_dir=run_dir).annotate(frame, seed=seed_frame)
    human = result.frame[result.frame.label_source == "human"]
    assert len(human) == len(records) - 1 and (human.label == human.gold_label).all()
    assert (result.frame.label_source == "unresolved").sum() == 1


def test_label_studio_round_trip(task: Task, run_with_hard_items, tmp_path: Path) -> None:
    run_dir, frame = run_with_hard_items
    tasks_file = tmp_path / "ls_tasks.json"
    assert cli("review", "--run-dir", str(run_dir), "--export-label-studio", str(tasks_file)).returncode == 0
    tasks = json.loads(tasks_file.read_text())
    assert tasks and {"text", "row", "item_id"} <= set(tasks[0]["data"])
    assert "<Choices name=\"label\" toName=\"text\"" in tasks_file.with_suffix(".xml").read_text()
    # What Label Studio's JSON export gives back: the tasks with their annotations.
    exported = [t | {"annotations": [{"was_cancelled": False, "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                       "value": {"choices": [frame.gold_label.iloc[t["data"]["row"]]]}}]}]} for t in tasks]  # fmt: skip
    export_file = tmp_path / "ls_export.json"
    export_file.write_text(json.dumps(exported))
    store = RunStore(run_dir / STORE_FILE)
    report = import_answers(export_file, store, task)
    assert report.imported == len(tasks) and store.pending_review() == []
    again = import_answers(export_file, store, task)
    assert again.imported == 0 and again.already_answered == len(tasks)  # a second answer never overwrites
    store.close()


def test_import_refuses_labels_outside_the_task(task: Task, run_with_hard_items, tmp_path: Path) -> None:
    run_dir, _ = run_with_hard_items
    store = RunStore(run_dir / STORE_FILE)
    row = store.pending_review()[0].row
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"row": row, "label": "sarcastic"}) + "\n")
    with pytest.raises(AnnotatorError, match="sarcastic"):
        import_answers(bad, store, task)
    assert row in {r.row for r in store.pending_review()}
    store.close()


def label_studio_task(row: int, *choices: str) -> dict:
    """One task of a Label Studio JSON export, with one annotation per choice (several annotators)."""
    annotations = [{"was_cancelled": False, "result": [{"from_name": "label", "to_name": "text", "type": "choices",
                                                         "value": {"choices": [choice]}}]} for choice in choices]  # fmt: skip
    return {"data": {"text": "t", "row": row}, "annotations": annotations}


@pytest.mark.parametrize(("policy", "first_row", "third_row"), [(None, None, None), ("first", "positive", "negative"), ("last", "negative", "positive")])
def test_conflicting_answers_in_one_import_are_reported_and_counted_per_item(run_with_hard_items, tmp_path: Path, policy, first_row, third_row) -> None:
    run_dir, _ = run_with_hard_items
    store = RunStore(run_dir / STORE_FILE)
    rows = [r.row for r in store.pending_review()][:4]
    store.close()
    # rows[0]: positive, then negative in a later task; rows[1]: twice neutral (no conflict);
    # rows[2]: two annotators disagree within one task; rows[3]: no answer. Written with a byte-order mark.
    export = [label_studio_task(rows[0], "positive"), label_studio_task(rows[1], "neutral"), label_studio_task(rows[2], "negative", "positive"),
              label_studio_task(rows[0], "negative"), label_studio_task(rows[1], "neutral"), label_studio_task(rows[3])]  # fmt: skip
    path = tmp_path / "export.json"
    path.write_text("\ufeff" + json.dumps(export), encoding="utf-8")
    run = cli("review", "--run-dir", str(run_dir), "--import", str(path), *(["--on-conflict", policy] if policy else []))
    assert run.returncode == 0, run.stderr
    imported = 1 if policy is None else 3
    assert f"imported {imported} answers; 0 items were already answered, 1 left blank, 2 with conflicting answers" in run.stdout
    assert f"row {rows[0]} " in run.stderr and "positive, negative" in run.stderr and f"row {rows[2]} " in run.stderr
    store = RunStore(run_dir / STORE_FILE)
    settled = {r.row: r.label for r in store.items() if r.label_source == "human"}
    store.close()
    assert settled.get(rows[1]) == "neutral" and rows[3] not in settled
    assert (settled.get(rows[0]), settled.get(rows[2])) == (first_row, third_row)


def test_an_unknown_conflict_policy_is_one_clear_line(run_with_hard_items, tmp_path: Path) -> None:
    run_dir, _ = run_with_hard_items
    run = cli("review", "--run-dir", str(run_dir), "--import", str(tmp_path / "x.json"), "--on-conflict", "newest")
    assert run.returncode == 2 and "unknown --on-conflict 'newest' (use first or last)" in run.stderr


def test_import_matches_by_id_and_reports_lines_naming_no_item_or_two_items(run_with_hard_items, tmp_path: Path) -> None:
    run_dir, _ = run_with_hard_items
    store = RunStore(run_dir / STORE_FILE)
    pending = store.pending_review()[:3]
    store.close()
    a, b, c = pending
    lines = [
        {"row": a.row, "id": b.item_id, "label": "positive"},  # row and id name two different items
        {"id": c.item_id, "label": "negative"},  # no row: the id names the item
        {"row": 99999, "label": "positive"},  # no such item
        {"id": "no-such-id", "label": "positive"},
    ]
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    run = cli("review", "--run-dir", str(run_dir), "--import", str(path))
    assert run.returncode == 0, run.stderr
    assert ("imported 1 answers; 0 items were already answered, 0 left blank, 0 with conflicting answers; "
            "1 lines whose row and id disagree, 2 naming no item of the run") in run.stdout  # fmt: skip
    assert f"id {b.item_id!r} is row {b.row}" in run.stderr and "row 99999" in run.stderr and "no-such-id" in run.stderr
    store = RunStore(run_dir / STORE_FILE)
    settled = {r.row: r.label for r in store.items() if r.label_source == "human"}
    store.close()
    assert settled == {c.row: "negative"}  # neither a nor b was labeled by the line that named both
