"""A real `kill -9` of a running annotate process, then the same command again: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import EXAMPLE


def stored_rows(db: Path) -> list[tuple[int, int]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT row, session FROM items").fetchall()
    except sqlite3.OperationalError:
        return []


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path: Path) -> None:
    tweets = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str)
    out, run_dir = tmp_path / "labeled.csv", tmp_path / "run"
    command = [sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"),
               "--input", str(EXAMPLE / "tweets.csv"), "--output", str(out), "--seed", str(EXAMPLE / "seed.csv"),
               "--specialists", "tfidf,embedding,lexicon", "--reviewer", "gold:gold_label", "--run-dir", str(run_dir),
               "--chunk-size", "100", "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = run_dir / "run.sqlite"
    deadline = time.monotonic() + 240
    while len(stored_rows(db)) < 500 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, f"annotate ended before it could be killed: {process.stderr.read().decode()[-500:]}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = dict(stored_rows(db))
    assert 500 <= len(before) < len(tweets) and not out.exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = stored_rows(db)
    rows = [r for r, _ in after]
    assert sorted(rows) == list(range(len(tweets)))  # every row once: none lost, none twice
    sessions = dict(after)
    assert all(sessions[r] == s for r, s in before.items())  # rows done before the kill were not labeled again
    assert {s for r, s in after if r not in before} == {2}
    labeled = pd.read_csv(out, dtype=str)
    assert labeled["id"].tolist() == tweets["id"].tolist() and labeled["id"].is_unique
    assert labeled["label"].notna().all()
    assert f"resumed from earlier sessions: {len(before)}" in resumed.stdout.replace("\n", " ")
