"""Refinement rounds: the β trigger, replay mixing, the gate, versions and rollback, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.items import labeled_seed
from autoannotator.refine import Labeled, refine_specialist
from autoannotator.specialists import create_specialist, load_specialist
from autoannotator.store import STORE_FILE, RunStore
from tests.conftest import EXAMPLE

FAST = ["tfidf", "lexicon"]


def run(task: Task, frame: pd.DataFrame, seed_frame, run_dir: Path, **refine) -> Annotator:
    annotator = Annotator(task, specialists=FAST, reviewer="gold:gold_label", run_dir=run_dir, chunk_size=100,
                          refine={"beta": 60, **refine})  # fmt: skip
    return annotator, annotator.annotate(frame, seed=seed_frame)


def test_rounds_start_each_time_beta_reviewed_items_wait(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    _, result = run(task, tweets_frame.iloc[:400], seed_frame, tmp_path / "r")
    rounds = result.summary.rounds
    assert len(rounds) >= 2
    # checked after each chunk's review: a round's pool is β plus at most one chunk's hard items
    assert all(60 <= r["pool_size"] < 60 + 100 for r in rounds)
    store = RunStore(tmp_path / "r" / STORE_FILE)
    used = store.labeled_by_review(used=True) + store.labeled_by_review(gate=True)
    assert sum(r["pool_size"] for r in rounds) == len(used)  # every reviewed item went into exactly one round
    assert len(store.labeled_by_review(used=False)) < 60  # what is left has not reached β
    tfidf = [v for v in store.specialist_versions() if v["name"] == "tfidf"]
    assert len(tfidf) == 1 + len(rounds) and sum(v["status"] == "active" for v in tfidf) == 1
    assert all((tmp_path / "r" / v["path"] / "head.npz").is_file() for v in tfidf)
    store.close()


def test_replay_mix_sizes(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    _, result = run(task, tweets_frame.iloc[:200], seed_frame, tmp_path / "r", replay=0.5, replay_consensus=0.25, gate_fraction=0.2, min_gate=5)
    first = result.summary.rounds[0]
    fresh = first["pool_size"] - round(0.2 * first["pool_size"])
    assert first["gate_size"] == round(0.2 * first["pool_size"])
    # tfidf refits from scratch: the pool, every earlier reviewed item (none before round 1), the whole seed, and
    # the consensus sample (0.25 x pool). The incremental mix (pool + 0.5 x pool replayed) is for hf only.
    seed_rows = len(labeled_seed(seed_frame, task, label_column="label")[0])
    tfidf = next(v for v in first["details"] if v["name"] == "tfidf")
    assert tfidf["train_size"] == fresh + seed_rows + round(0.25 * fresh)
    assert first["train_size"] == tfidf["train_size"]  # the round trained its only trainable specialist on that set


def test_labeled_sample_is_without_replacement() -> None:
    data = Labeled([f"t{i}" for i in range(10)], ["a"] * 10)
    sample = data.sample(4, np.random.default_rng(0))
    assert len(sample) == 4 and len(set(sample.texts)) == 4
    assert len(data.sample(50, np.random.default_rng(0))) == 10 and len(data.sample(0, np.random.default_rng(0))) == 0


def test_the_gate_rejects_a_harmful_round(task: Task, seed_frame, tweets_frame, tmp_path: Path) -> None:
    specialist = create_specialist("tfidf", task).fit(seed_frame.text.tolist(), seed_frame.label.tolist())
    pool = tweets_frame.iloc[:600]
    wrong = [task.label_names[(task.label_names.index(y) + 1) % 3] for y in pool.gold_label]  # every label wrong
    gate = Labeled(tweets_frame.text.iloc[600:800].tolist(), tweets_frame.gold_label.iloc[600:800].tolist())
    result = refine_specialist(specialist, Labeled(pool.text.tolist(), wrong), gate, tmp_path / "v2")
    assert not result.promoted and result.after < result.before
    seed = Labeled(seed_frame.text.tolist(), seed_frame.label.tolist())
    good = refine_specialist(specialist, seed + Labeled(pool.text.tolist(), pool.gold_label.tolist()), gate, tmp_path / "v3")
    assert good.promoted and good.after >= good.before


def test_rollback_makes_the_previous_version_active_for_the_next_run(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    frame = tweets_frame.iloc[:300]
    run(task, frame, seed_frame, tmp_path / "r")
    store = RunStore(tmp_path / "r" / STORE_FILE)
    active_before = store.active_specialist("tfidf")[0]
    assert active_before > 1
    rolled = subprocess.run([sys.executable, "-m", "autoannotator", "rollback", "--run-dir", str(tmp_path / "r"),
                             "--specialist", "tfidf", "--version", "1"], capture_output=True, text=True)  # fmt: skip
    assert rolled.returncode == 0 and "version 1 is active" in rolled.stdout
    assert store.active_specialist("tfidf")[0] == 1
    with pytest.raises(Exception, match="no earlier version"):
        store.rollback("tfidf")
    store.close()
    annotator, _ = run(task, frame, seed_frame, tmp_path / "r")
    v1 = load_specialist(tmp_path / "r" / "specialists" / "tfidf" / "v1", task)
    texts = frame.text.tolist()[:50]
    assert np.allclose(annotator.specialists["tfidf"].predict_proba(texts), v1.predict_proba(texts))


@pytest.mark.slow
def test_hf_refinement_continues_training_and_leaves_the_original(task: Task, seed_frame, tmp_path: Path) -> None:
    hf = create_specialist("hf", task, epochs=1, max_length=32, batch_size=32).fit(seed_frame.text[:64].tolist(), seed_frame.label[:64].tolist())
    texts = seed_frame.text[64:96].tolist()
    before = hf.predict_proba(texts)
    candidate = hf.refined(texts, seed_frame.label[64:96].tolist(), tmp_path / "v2")
    assert np.allclose(hf.predict_proba(texts), before, atol=1e-6)  # the active model is untouched
    assert not np.allclose(candidate.predict_proba(texts), before, atol=1e-4)
    assert (tmp_path / "v2" / "model" / "model.safetensors").is_file()


def reviews_and_rounds(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db, timeout=10) as conn:
        reviewed = conn.execute("SELECT COUNT(*) FROM items WHERE label_source = 'gold'").fetchone()[0]
        rounds = conn.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    return reviewed, rounds


@pytest.mark.slow
def test_kill_9_during_a_fine_tuning_round_then_resume(tmp_path: Path) -> None:
    tweets = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:600].to_csv(tweets, index=False)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tweets),
               "--output", str(tmp_path / "out.csv"), "--seed", str(EXAMPLE / "seed.csv"), "--specialists", "tfidf,embedding,lexicon",
               "--reviewer", "gold:gold_label", "--beta", "150", "--chunk-size", "100", "--run-dir", str(run_dir), "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    candidate = run_dir / "specialists" / "embedding" / "v2"
    deadline = time.monotonic() + 300
    while not candidate.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, process.stderr.read().decode()[-400:]
    os.kill(process.pid, signal.SIGKILL)  # the embedding candidate of round 1 is being trained
    process.wait()
    reviewed_before, rounds_before = reviews_and_rounds(run_dir / STORE_FILE)
    assert rounds_before == 0 and reviewed_before >= 150
    store = RunStore(run_dir / STORE_FILE)
    assert store.active_specialist("embedding")[0] == 1 and store.active_specialist("tfidf")[0] == 1  # nothing half-promoted
    store.close()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    reviewed_after, rounds_after = reviews_and_rounds(run_dir / STORE_FILE)
    assert reviewed_after >= reviewed_before and rounds_after >= 1  # no review lost; the round ran on resume
    labeled = pd.read_csv(tmp_path / "out.csv")
    assert len(labeled) == 600 and labeled.label.notna().all()


def test_cold_start_labels_a_seed_with_the_reviewer_first(task: Task, tweets_frame, tmp_path: Path) -> None:
    frame = tweets_frame.iloc[:300]
    def make() -> Annotator:
        return Annotator(task, specialists=FAST, reviewer="gold:gold_label", seed_reviewer="gold:gold_label",
                         seed_size=100, run_dir=tmp_path / "r")  # fmt: skip

    result = make().annotate(frame)
    assert "fit:tfidf" in result.summary.seconds
    store = RunStore(tmp_path / "r" / STORE_FILE)
    seed_rows = store.seed_rows()
    assert len(seed_rows) == 100
    assert (result.frame.loc[seed_rows, "label_source"] == "gold").all()
    assert (result.frame.loc[seed_rows, "votes"] == "{}").all()  # labeled before any specialist existed
    assert (result.frame.label_source == "consensus").sum() > 50
    store.close()
    again = make().annotate(frame)
    assert "fit:tfidf" not in again.summary.seconds and again.frame.label.tolist() == result.frame.label.tolist()


def test_rescoring_sends_flipped_consensus_items_back_to_review(task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    _, result = run(task, tweets_frame.iloc[:600], seed_frame, tmp_path / "r", rescore_below=0.99)
    store = RunStore(tmp_path / "r" / STORE_FILE)
    rerouted = [row for row in range(600) if any(r["reviewer"] == "refine" for r in store.reviews(row))]
    assert rerouted  # some consensus labels flipped under the refined specialists
    for row in rerouted:
        log = store.reviews(row)
        assert log[0]["detail"]["old_label"] is not None
        assert result.frame.loc[row, "label_source"] == "gold"  # re-reviewed after the flip
    store.close()
