"""One run directory, one writer: real `annotate` processes and the run directory's lock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from autoannotator.store import STORE_FILE
from tests.conftest import EXAMPLE


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoannotator", *args], capture_output=True, text=True, timeout=300)


def test_a_second_process_on_a_run_directory_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    tweets = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:60].to_csv(tweets, index=False)
    out, run_dir = tmp_path / "out.csv", tmp_path / "out.csv.run"
    args = ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tweets), "--output", str(out),
            "--seed", str(EXAMPLE / "seed.csv"), "--specialists", "tfidf,lexicon", "--quiet"]  # fmt: skip
    silent = socket.socket()  # an LLM server that accepts and never answers: the first run stays in its review step
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    llm = ["--reviewer", "llm", "--llm-base-url", f"http://127.0.0.1:{silent.getsockname()[1]}/v1", "--llm-model", "m", "--llm-timeout", "300"]
    first = subprocess.Popen([sys.executable, "-m", "autoannotator", *args, *llm], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not ((run_dir / STORE_FILE).is_file() and f"{first.pid} annotate" in _read(run_dir / ".lock")):
            assert first.poll() is None and time.time() < deadline, first.stderr.read() if first.poll() is not None else "timed out"
            time.sleep(0.2)
        second = cli(*args, "--reviewer", "none")
        assert second.returncode == 2, second.stderr
        assert f"in use by annotate (pid {first.pid})" in second.stderr and len(second.stderr.strip().splitlines()) == 1
        assert "Traceback" not in second.stderr and not out.exists()
        review = cli("review", "--run-dir", str(run_dir), "--export", str(tmp_path / "queue.jsonl"))
        assert review.returncode == 2 and f"(pid {first.pid})" in review.stderr  # review waits for the run to finish
        assert first.poll() is None  # the first run goes on
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        silent.close()
    # kill -9 leaves no stale lock: the kernel drops it with the process
    after = cli("review", "--run-dir", str(run_dir), "--export", str(tmp_path / "queue.jsonl"))
    assert after.returncode == 0, after.stderr


def test_review_commands_share_the_lock_and_annotate_waits_for_them(tmp_path: Path) -> None:
    """Two review processes (shared) may work on one run at once; annotate is refused while one is open."""
    tweets = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:30].to_csv(tweets, index=False)
    out, run_dir = tmp_path / "out.csv", tmp_path / "out.csv.run"
    args = ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tweets), "--output", str(out),
            "--seed", str(EXAMPLE / "seed.csv"), "--specialists", "tfidf,lexicon", "--reviewer", "none", "--quiet"]  # fmt: skip
    assert cli(*args).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SHARED, str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        export = cli("review", "--run-dir", str(run_dir), "--export", str(tmp_path / "queue.jsonl"))
        assert export.returncode == 0, export.stderr  # review beside review
        again = cli(*args)
        assert again.returncode == 2 and f"in use by review --serve (pid {holder.pid})" in again.stderr
    finally:
        holder.kill()
        holder.wait()
    assert cli(*args).returncode == 0


HOLD_SHARED = """
import sys
from autoannotator.run_lock import run_lock
with run_lock(sys.argv[1], "review --serve", shared=True):
    print("held", flush=True)
    sys.stdin.read()
"""


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
