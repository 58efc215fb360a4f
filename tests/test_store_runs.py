"""The run store under crashes and long runs: seeding in one transaction, seed items as seed replay only,
"all voters agreed" per item, re-scoring that resumes, per-chunk cost that stays flat, schema versions."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, AnnotatorError, Task
from autoannotator.items import labeled_seed
from autoannotator.refine import RefineSettings, Refiner
from autoannotator.store import SCHEMA_VERSION, STORE_FILE, ItemRecord, RunStore
from tests.conftest import EXAMPLE, ROOT

FAST = ["tfidf", "lexicon"]


def cli(args: list[str], *, kill_after: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; with `kill_after` (a statement marker, n) it is SIGKILLed right after that commit."""
    prefix = ["-m", "tests.kill_after_commit", kill_after[0], str(kill_after[1]), "--"] if kill_after else ["-m", "autoannotator"]
    return subprocess.run([sys.executable, *prefix, *map(str, args)], capture_output=True, text=True, timeout=900, cwd=ROOT)


def tweets_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:n].to_csv(path, index=False)
    return path


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.slow
def test_seed_label_killed_right_after_storing_its_seed_items_resumes(tmp_path: Path) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "out.csv"
    args = ["annotate", "--task", EXAMPLE / "task.yaml", "--input", tweets_file(tmp_path, 200), "--output", out,
            "--specialists", "tfidf,lexicon", "--reviewer", "gold:gold_label", "--seed-label", "gold:gold_label",
            "--seed-size", "60", "--run-dir", run_dir, "--quiet"]  # fmt: skip
    killed = cli(args, kill_after=("INSERT INTO items", 1))  # the first transaction that writes items: the seed's
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    assert query(run_dir / STORE_FILE, "SELECT COUNT(*), SUM(label IS NULL) FROM items") == [(60, 60)]  # stored, not labeled
    resumed = cli(args)
    assert resumed.returncode == 0, resumed.stderr[-800:]
    labeled = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(labeled) == 200 and (labeled.label != "").all()
    seed = labeled[labeled.votes == "{}"]
    assert len(seed) == 60 and (seed.label_source == "gold").all()  # the same 60 seed items, labeled once


def test_seed_label_items_are_seed_replay_never_a_rounds_pool_or_gate(task: Task, tweets_frame, tmp_path: Path) -> None:
    annotator = Annotator(task, specialists=FAST, reviewer="gold:gold_label", seed_reviewer="gold:gold_label", seed_size=80,
                          run_dir=tmp_path / "r", chunk_size=100, refine={"beta": 40, "min_gate": 5})  # fmt: skip
    result = annotator.annotate(tweets_frame.iloc[:400])
    assert result.summary.rounds
    store = RunStore(tmp_path / "r" / STORE_FILE)
    seed = {r for (r,) in store.conn.execute("SELECT row FROM items WHERE votes = '{}'")}  # labeled before any specialist
    assert len(seed) == 80 and (result.frame.loc[sorted(seed), "label_source"] == "gold").all()
    in_rounds = {r for (r,) in store.conn.execute("SELECT row FROM items WHERE used_in_round IS NOT NULL OR gate = 1")}
    assert in_rounds and not in_rounds & seed  # pools and gates hold reviewed hard items only
    assert set(store.seed_rows()) == seed
    assert sum(r["pool_size"] for r in result.summary.rounds) == len(in_rounds)
    tfidf = next(v for v in result.summary.rounds[0]["details"] if v["name"] == "tfidf")
    assert tfidf["train_size"] >= 80 + result.summary.rounds[0]["pool_size"] - result.summary.rounds[0]["gate_size"]  # seed replayed
    store.close()


def test_unanimity_is_stored_per_item_and_replay_samples_it_under_the_margin_rule(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    annotator = Annotator(task, specialists=FAST, reviewer="gold:gold_label", run_dir=tmp_path / "r", chunk_size=100,
                          rule="margin", budget=0.25, refine={"beta": 60, "gate_fraction": 0.2, "min_gate": 5})  # fmt: skip
    result = annotator.annotate(tweets_frame.iloc[:400], seed=seed_frame)
    first = result.summary.rounds[0]
    fresh = first["pool_size"] - first["gate_size"]
    tfidf = next(v for v in first["details"] if v["name"] == "tfidf")  # refit on the pool, the seed and the unanimous share
    assert tfidf["train_size"] == fresh + len(labeled_seed(seed_frame, task, label_column="label")[0]) + round(0.25 * fresh)
    store = RunStore(tmp_path / "r" / STORE_FILE)
    for record in store.items():
        labels = [v["label"] for v in record.votes.values()]
        assert record.unanimous == (bool(labels) and None not in labels and len(set(labels)) == 1)
    unanimous = store.unanimous_rows()
    assert unanimous and all(store.item(r).uncertainty > 0 for r in unanimous[:20])  # agreed, yet margin U > 0
    store.close()


def rerouted(db: Path) -> list[int]:
    return sorted(r for (r,) in query(db, "SELECT row FROM reviews WHERE reviewer = 'refine'"))


@pytest.mark.slow
def test_rescoring_killed_after_its_first_chunk_resumes_where_it_stopped(tmp_path: Path) -> None:
    tweets = tweets_file(tmp_path, 500)

    def args(name: str) -> list:
        return ["annotate", "--task", EXAMPLE / "task.yaml", "--input", tweets, "--output", tmp_path / f"{name}.csv",
                "--seed", EXAMPLE / "seed.csv", "--specialists", "tfidf,lexicon", "--reviewer", "gold:gold_label",
                "--beta", "60", "--rescore-below", "0.99", "--chunk-size", "40", "--run-dir", tmp_path / name, "--quiet"]  # fmt: skip

    whole = cli(args("whole"))
    assert whole.returncode == 0, whole.stderr[-800:]
    expected = rerouted(tmp_path / "whole" / STORE_FILE)
    assert len(expected) > 10
    killed = cli(args("killed"), kill_after=("'refine'", 1))  # right after re-scoring's first chunk commits
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-500:]
    done_before = rerouted(tmp_path / "killed" / STORE_FILE)
    assert 0 < len(done_before) < len(expected)  # killed with re-scoring's later chunks still to do
    resumed = cli(args("killed"))
    assert resumed.returncode == 0, resumed.stderr[-800:]
    assert rerouted(tmp_path / "killed" / STORE_FILE) == expected  # the rest re-scored, nothing twice
    same = pd.read_csv(tmp_path / "whole.csv", dtype=str).equals(pd.read_csv(tmp_path / "killed.csv", dtype=str))
    assert same


def test_rescoring_under_a_budget_sends_back_only_flips_and_items_without_majority(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    annotator = Annotator(task, specialists=["tfidf"], reviewer="gold:gold_label", run_dir=tmp_path / "r", chunk_size=100,
                          rule="margin", budget=0.2, refine={"beta": 60, "rescore_below": 0.99})  # fmt: skip
    annotator.annotate(tweets_frame.iloc[:600], seed=seed_frame.iloc[:200])  # a small seed: the rounds move tfidf
    store = RunStore(tmp_path / "r" / STORE_FILE)
    lines = [r for row in rerouted(tmp_path / "r" / STORE_FILE) for r in store.reviews(row) if r["reviewer"] == "refine"]
    assert lines
    for line in lines:
        new = store.item(line["row"]).consensus_label  # the refined pool's consensus, kept after the re-review
        assert new is None or new != line["detail"]["old_label"]  # the budget was spent at first routing
    assert store.get_meta("rescore_after_row") is None  # finished
    store.close()


def record(row: int, *, hard: bool = False, agreed: bool = True) -> ItemRecord:
    votes = {"a": {"label": "x", "p": 0.9}, "b": {"label": "x" if agreed else "y", "p": 0.8}}
    return ItemRecord(row=row, item_id=f"id{row}", text_hash=f"h{row}", text=f"text {row}", state="pending_review" if hard else "done",
                      label=None if hard else "x", label_source="unresolved" if hard else "consensus", consensus_label="x",
                      uncertainty=0.0 if agreed else 0.5, votes=votes)  # fmt: skip


def chunk_work(store: RunStore, refiner: Refiner, start: int, size: int) -> int:
    """SQLite VM steps (in thousands) of one chunk's store work: save, hard items, answers, trigger, page look-ups."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    store.conn.set_progress_handler(count, 1000)
    store.save_items([record(r, hard=r % 7 == 0, agreed=r % 3 != 0) for r in range(start, start + size)])
    pending = store.pending_review(list(range(start, start + size)))
    store.save_reviews((r.row, "gold", "x", None, {}) for r in pending)
    refiner.due(store)
    for row in (1, start // 2, start - 1):
        store.reviews(row)
    store.lease_next("alice", 60.0)
    store.conn.set_progress_handler(None, 0)
    return steps[0]


def test_a_chunks_store_work_does_not_grow_with_the_run(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, {"input": "x"})
    store.start_session()
    refiner = Refiner(RefineSettings(beta=400, min_gate=5), tmp_path)
    size, work = 200, {}
    for start in range(0, 40_000, size):
        if start in (2_000, 38_000):
            work[start] = chunk_work(store, refiner, start, size)
        else:
            store.save_items([record(r, hard=r % 7 == 0, agreed=r % 3 != 0) for r in range(start, start + size)])
            store.save_reviews((r, "gold", "x", None, {}) for r in range(start, start + size) if r % 7 == 0)
        while refiner.due(store):
            refiner.run_round(store, {}, None)  # a round's store side (nothing to train): its pool is used from now on
    assert len(store.rounds()) > 10
    assert work[38_000] < 1.3 * work[2_000], work  # 19 times the items before it, about the same work
    store.close()


def test_a_store_of_another_schema_version_is_refused_with_one_line(tmp_path: Path) -> None:
    RunStore.open(tmp_path, {"input": "x"}).close()
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(AnnotatorError, match=r"schema version 99, this AutoAnnotator reads version") as caught:
        RunStore.open(tmp_path, {"input": "x"})
    assert "\n" not in str(caught.value)
    shown = subprocess.run([sys.executable, "-m", "autoannotator", "versions", "--run-dir", str(tmp_path)],
                           capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert shown.returncode == 2 and "schema version 99" in shown.stderr and "Traceback" not in shown.stderr


def test_a_version_6_store_gains_the_audit_flag_and_keeps_its_items(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, {"input": "x"})
    store.start_session()
    store.save_items([ItemRecord(row=0, item_id="a", text_hash="h", state="done", label="x", label_source="consensus",
                                 consensus_label="x", uncertainty=0.1, votes={})])  # fmt: skip
    store.close()
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:  # the items table as version 6 had it
        conn.executescript("ALTER TABLE items DROP COLUMN audited; UPDATE meta SET value = '6' WHERE key = 'schema_version';")
    store = RunStore.open(tmp_path, {"input": "x"})
    assert store.get_meta("schema_version") == SCHEMA_VERSION == "8"
    assert [(r.row, r.label, r.audited) for r in store.items()] == [(0, "x", False)]
    store.close()


def test_a_file_that_is_not_a_run_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / STORE_FILE).write_text("not a database at all, just text" * 100)
    with pytest.raises(AnnotatorError, match="is not a run store"):
        RunStore.open(tmp_path, {"input": "x"})


def test_a_version_3_store_is_upgraded_in_place(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:
        conn.executescript((Path(__file__).parent / "fixtures" / "store_v3.sql").read_text())
    store = RunStore.open(tmp_path, {"input": "x"})
    assert store.get_meta("schema_version") == SCHEMA_VERSION
    assert [(r.row, r.unanimous, r.seed) for r in store.items()] == [(0, True, False), (1, False, False), (2, False, True)]
    assert store.seed_rows() == [2] and store.unanimous_rows() == [0]
    assert store.consensus_below(0.7, after_row=-1, limit=10)[0].row == 1  # mean confidence (0.0 + 0.6) / 2
    assert store.reviews(2)[0]["label"] == "negative"
    store.record_llm_call(key="k2", model="unpriced-model", status="paid", cost_usd=None)  # version 4: a price may be unknown
    assert store.llm_usage()["gpt-4o-mini"]["cost_usd"] == pytest.approx(0.0001) and store.llm_usage()["unpriced-model"]["cost_usd"] is None
    store.close()
    RunStore.open(tmp_path, {"input": "x"}).close()  # and opens again as the current version
