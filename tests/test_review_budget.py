"""The whole-run review budget: F of all items over a streamed run, on chunks that differ in difficulty."""

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
from autoannotator.budget import budget_route
from tests.conftest import EXAMPLE


def stream(u_chunks: list[np.ndarray], fraction: float, reference: np.ndarray) -> list[np.ndarray]:
    """Route chunks one after another as the run loop does; returns each chunk's hard mask."""
    n_items, done, routed, seen, out = sum(map(len, u_chunks)), 0, 0, reference, []
    for u in u_chunks:
        hard = budget_route(u, np.zeros(len(u), bool), fraction=fraction, n_items=n_items, done_before=done, routed_before=routed, reference=seen)
        out.append(hard)
        done, routed, seen = done + len(u), routed + int(hard.sum()), np.concatenate([seen, u])
    return out


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
@pytest.mark.parametrize("reference", ["seed", "none"])
def test_realised_share_ends_within_one_point_and_follows_the_hard_chunks(fraction: float, reference: str) -> None:
    rng = np.random.default_rng(0)
    easy, hard_ = [rng.beta(1, 6, 300) for _ in range(5)], [rng.beta(3, 2, 300) for _ in range(5)]
    chunks = [c for pair in zip(easy, hard_) for c in pair] + [rng.beta(1, 6, 37)]  # alternating, and a short last chunk
    seed_u = np.concatenate([rng.beta(1, 6, 500), rng.beta(3, 2, 500)]) if reference == "seed" else np.zeros(0)
    routed = stream(chunks, fraction, seed_u)
    n_items = sum(map(len, chunks))
    share = sum(int(h.sum()) for h in routed) / n_items
    assert abs(share - fraction) <= 0.01, share
    per_chunk = [h.mean() for h in routed[:10]]
    assert np.mean(per_chunk[1::2]) > 2 * np.mean(per_chunk[0::2])  # not F of every chunk: spent where U is high


def test_items_without_a_label_are_always_reviewed_and_u_zero_never() -> None:
    u = np.array([0.0, 0.0, 0.9, 0.1, 0.5])
    forced = np.array([True, False, False, False, False])
    hard = budget_route(u, forced, fraction=0.4, n_items=5, done_before=0, routed_before=0, reference=np.zeros(0))
    assert hard.tolist() == [True, False, True, False, False]


def review_share(frame: pd.DataFrame) -> float:
    return float((frame["label_source"] != "consensus").mean())


def test_streamed_local_run_realises_the_whole_run_budget(task: Task, tweets_frame: pd.DataFrame, tmp_path: Path) -> None:
    frame = tweets_frame.iloc[:900]
    run = Annotator(task, specialists=["lexicon"], reviewer="gold:gold_label", run_dir=tmp_path / "run", rule="margin", budget=0.15, chunk_size=40)
    result = run.annotate(frame)
    assert abs(result.summary.review_fraction - 0.15) <= 0.01
    assert result.summary.budget_target == 0.15 and abs(review_share(result.frame) - 0.15) <= 0.01
    shares = result.frame.groupby(result.frame.index // 40)["label_source"].apply(lambda s: (s != "consensus").mean())
    assert shares.max() - shares.min() > 0.15  # chunks get what their U asks for, not 15% each


@pytest.mark.slow
def test_whole_run_budget_survives_kill_9(tmp_path: Path) -> None:
    tweets = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str)
    out, run_dir = tmp_path / "labeled.csv", tmp_path / "run"
    command = [sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(EXAMPLE / "tweets.csv"),
               "--output", str(out), "--specialists", "lexicon", "--rule", "margin", "--budget", "0.2", "--reviewer", "gold:gold_label",
               "--run-dir", str(run_dir), "--chunk-size", "10", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ | {"PYTHONPATH": str(EXAMPLE.parents[1] / "src")})
    db, deadline, stored = run_dir / "run.sqlite", time.monotonic() + 240, 0
    while stored < 600 and time.monotonic() < deadline and process.poll() is None:
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                stored = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        except sqlite3.OperationalError:
            stored = 0
        time.sleep(0.02)
    assert process.poll() is None, f"annotate ended before it could be killed: {process.stderr.read().decode()[-500:]}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    labeled = pd.read_csv(out, dtype=str)
    assert len(labeled) == len(tweets) and abs(review_share(labeled) - 0.2) <= 0.01
    assert "review budget: target 20.0% of all items, realised" in resumed.stdout.replace("\n", " ")
