"""--max-cost on a model without a price is refused before any training, and --llm-price-in/--llm-price-out give the
price on the command line (issue 24 #6), against the real local OpenAI-compatible test server."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from autoannotator.cli import app
from tests.conftest import EXAMPLE
from tests.reviewers.test_reviewer_probe import answered, server  # noqa: F401 - the keyword-answering server, a fixture


def annotate(tmp_path: Path, url: str, *extra: str) -> object:
    pd.read_csv(EXAMPLE / "tweets.csv").iloc[:40].to_csv(tmp_path / "in.csv", index=False)
    return CliRunner().invoke(app, ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tmp_path / "in.csv"),
                                    "--seed", str(EXAMPLE / "seed.csv"), "--specialists", "tfidf,embedding", "--rule", "learned",
                                    "--budget", "0.2", "--reviewer", "llm", "--llm-base-url", url, "--llm-model", "my-own-model",
                                    "--reviewer-probe", "5", "--output", str(tmp_path / "out.csv"), "--quiet", *extra])  # fmt: skip


def test_max_cost_without_a_price_is_refused_before_training_and_a_price_flag_runs_it(server, tmp_path: Path) -> None:
    url, log = server
    started = time.perf_counter()
    refused = annotate(tmp_path, url, "--max-cost", "1")
    assert refused.exit_code == 2 and "--max-cost needs the price of 'my-own-model': give --llm-price-in and --llm-price-out" in refused.output
    assert time.perf_counter() - started < 10 and not (tmp_path / "out.csv.run" / "specialists").exists() and answered(log) == []
    priced = annotate(tmp_path, url, "--max-cost", "1", "--llm-price-in", "2.5", "--llm-price-out", "10")
    assert priced.exit_code == 0, priced.output
    billed = answered(log)
    expected = sum(r["prompt_tokens"] * 2.5 + r["completion_tokens"] * 10 for r in billed) / 1e6
    from autoannotator.store import STORE_FILE, RunStore

    usage = RunStore(tmp_path / "out.csv.run" / STORE_FILE).llm_usage()["my-own-model"]
    assert abs(usage["cost_usd"] - expected) < 1e-9 and usage["calls"] == len(billed) > 0
    half = annotate(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, url, "--llm-price-in", "2.5")
    assert half.exit_code == 2 and "--llm-price-in and --llm-price-out go together" in half.output
