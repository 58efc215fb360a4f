"""Predicting a run before paying for it: review share, LLM calls, tokens, $ and wall time, with intervals.

`Annotator.estimate` trains (or loads) the pool and scores a seeded random sample of the input; the
functions here turn that sample into figures for the whole input. Intervals are 95%: the review share
is a binomial proportion (Wilson score interval; exact when the sample is the whole input), per-call
tokens and per-item scoring time are means over the sample (Student t). Totals combine the low ends
and the high ends.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoannotator.consensus import Rule, decide, route_by_budget, route_by_threshold
from autoannotator.reviewer_skill import accuracy_interval
from autoannotator.reviewers.base import Reviewer
from autoannotator.store import RunStore
from autoannotator.task import Task

CONFIDENCE = 0.95
COT_REASONING_TOKENS = 80  # "at most three sentences" of reasoning before the label line (the cot prompt)
DEFAULT_LLM_SECONDS = (1.0, 0.5, 3.0)  # per call at a hosted API when the run has no measured latency yet
DEFAULT_HUMAN_SECONDS = (15.0, 5.0, 40.0)  # per item for a person
CURVE_BUDGETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
FIGURES = ("review_fraction", "llm_calls", "prompt_tokens", "completion_tokens", "cost_usd", "seconds")


@dataclass(frozen=True)
class Interval:
    """A figure with the low and high ends of its 95% interval."""

    value: float
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> Interval:
        return cls(value, value, value)

    def scale(self, factor: float) -> Interval:
        return Interval(self.value * factor, self.low * factor, self.high * factor)

    def times(self, other: Interval) -> Interval:
        """Product of two non-negative figures: low with low, high with high."""
        return Interval(self.value * other.value, self.low * other.low, self.high * other.high)

    def plus(self, other: Interval) -> Interval:
        return Interval(self.value + other.value, self.low + other.low, self.high + other.high)


def proportion_interval(k: int, m: int, population: int) -> Interval:
    """Share k/m of a sample of m from `population` items: the Wilson score interval (Wilson, 1927), exact when
    the sample is the whole population."""
    if m == 0:
        return Interval.exact(0.0)
    if m >= population:
        return Interval.exact(k / m)
    share = accuracy_interval(k, m, CONFIDENCE)
    return Interval(share.value, share.low, share.high)


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean of `values` with a Student-t 95% interval (clipped at 0); a single value has no spread."""
    if not len(values):
        return Interval.exact(0.0)
    mean = float(np.mean(values))
    if len(values) < 2:
        return Interval.exact(mean)
    from scipy.stats import t

    half = float(t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)) * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return Interval(mean, max(0.0, mean - half), mean + half)


@dataclass
class ReviewerCosts:
    """What one hard item costs the reviewer: calls, tokens per call, USD per token, seconds per call."""

    calls_per_item: float = 0.0
    prompt_tokens: Interval = field(default_factory=lambda: Interval.exact(0.0))
    completion_tokens: Interval = field(default_factory=lambda: Interval.exact(0.0))
    usd_per_prompt_token: float = 0.0
    usd_per_completion_token: float = 0.0
    seconds_per_item: Interval = field(default_factory=lambda: Interval.exact(0.0))
    concurrency: int = 1
    rate_limit: float | None = None
    model: str | None = None
    tokenizer: str | None = None
    max_cost_usd: float | None = None
    max_calls: int | None = None
    notes: list[str] = field(default_factory=list)


def reviewer_costs(reviewer: Reviewer | None, task: Task, hard_texts: list[str], store: RunStore,
                   seconds_per_review: float | None = None) -> ReviewerCosts:  # fmt: skip
    """Per-item costs of `reviewer` on the sampled hard items, without asking it anything paid.

    LLM server: the real prompt of each item counted with the model's tokenizer (`llm.tokens`), the
    completion from the prompt style, the price table, and the mean latency of this run's earlier paid
    calls (else an assumed 1 s, 0.5-3 s). Embedded LLM: its own tokenizer and a timed scoring of up to
    five items (free). Gold: nothing. A person: an assumed 15 s (5-40 s) per item."""
    from autoannotator.reviewers.gold import GoldReviewer
    from autoannotator.reviewers.llm import LLMReviewer
    from autoannotator.reviewers.local_llm import LocalLLMReviewer

    given = None if seconds_per_review is None else Interval.exact(seconds_per_review)
    if reviewer is None or isinstance(reviewer, GoldReviewer):
        return ReviewerCosts()
    if isinstance(reviewer, LLMReviewer):
        return _server_costs(reviewer, task, hard_texts, store, given)
    if isinstance(reviewer, LocalLLMReviewer):
        return _embedded_costs(reviewer, hard_texts, given)
    return ReviewerCosts(seconds_per_item=given or Interval(*DEFAULT_HUMAN_SECONDS),
                         notes=[] if given else ["reviewer time: an assumed 15 s per item (5-40 s); set --seconds-per-review"])  # fmt: skip


def _server_costs(reviewer: Any, task: Task, hard_texts: list[str], store: RunStore, given: Interval | None) -> ReviewerCosts:
    from autoannotator.llm.tokens import counter_for

    settings = reviewer.settings
    counter = counter_for(settings.model)
    requests = [m for m in (reviewer.messages(text) for text in hard_texts) if m is not None]
    prompts = [counter.messages(m) for m in requests]
    asked_share = len(requests) / len(hard_texts) if hard_texts else 1.0  # multiple choice: unreadable options are not asked
    if settings.prompt == "cot":
        line = [counter.count(f"Label: {name}") for name in task.label_names]
        completion = Interval(COT_REASONING_TOKENS + float(np.mean(line)), min(line), float(reviewer.max_tokens()))
    else:
        answers = [json.dumps({"label": n}) if settings.structured != "none" else n for n in task.label_names]
        counts = [counter.count(a) for a in answers]
        completion = Interval(float(np.mean(counts)), min(counts), max(counts))
    price = reviewer.prices.price(settings.model)
    notes = [] if counter.exact else [f"prompt tokens: {counter.name} (the model's tokenizer is not known here)"]
    if price is None:
        notes.append(f"no price for '{settings.model}' in the price table: $ counted as 0 (--price-table)")
    measured = store.llm_latencies().get(settings.model, [])
    if given is not None:
        seconds = given
    elif measured:
        seconds = mean_interval(measured)
        notes.append(f"LLM latency: mean of this run's {len(measured)} earlier paid calls")
    else:
        seconds = Interval(*DEFAULT_LLM_SECONDS)
        notes.append("LLM latency: an assumed 1 s per call (0.5-3 s); set --seconds-per-review")
    if settings.samples > 1:
        notes.append(f"{settings.samples} answers per item (self-consistency)")
    return ReviewerCosts(
        calls_per_item=settings.samples * asked_share, prompt_tokens=mean_interval(prompts), completion_tokens=completion,
        usd_per_prompt_token=price.input / 1e6 if price else 0.0, usd_per_completion_token=price.output / 1e6 if price else 0.0,
        seconds_per_item=seconds, concurrency=settings.max_in_flight, rate_limit=settings.rate_limit, model=settings.model,
        tokenizer=counter.name, max_cost_usd=settings.max_cost_usd, max_calls=settings.max_calls, notes=notes,
    )  # fmt: skip


def _embedded_costs(reviewer: Any, hard_texts: list[str], given: Interval | None) -> ReviewerCosts:
    import time

    from autoannotator.reviewers.local_llm import one_line

    prefix = len(reviewer.prefix_tokens)
    prompts = [prefix + len(reviewer.llm.tokenize(f"Text: {one_line(t)}\nLabel:".encode(), add_bos=False)) for t in hard_texts]
    if given is None:
        reviewer.calibration  # noqa: B018 - computed once per run, not per item
        timings = []
        for text in hard_texts[:5]:
            started = time.perf_counter()
            reviewer.score(text)
            timings.append(time.perf_counter() - started)
        given = mean_interval(timings)
    return ReviewerCosts(calls_per_item=1, prompt_tokens=mean_interval(prompts), seconds_per_item=given,
                         model=f"local:{reviewer.model_name}", tokenizer=f"llama.cpp:{reviewer.model_name}")  # fmt: skip


@dataclass
class Estimate:
    """Predicted figures for a whole run. Units: tokens, USD, seconds; `review_fraction` of all input items."""

    n_items: int
    n_sampled: int
    review_fraction: Interval
    llm_calls: Interval
    prompt_tokens: Interval
    completion_tokens: Interval
    cost_usd: Interval
    seconds: Interval
    seconds_specialists: Interval
    seconds_reviewer: Interval
    seconds_training: float = 0.0
    model: str | None = None
    tokenizer: str | None = None
    notes: list[str] = field(default_factory=list)
    curve: list[dict] = field(default_factory=list)
    reviewer: dict[str, Any] = field(default_factory=dict)  # the review mode and the reviewer probe's figures (probe.ProbeAnswers.figures)

    def to_dict(self) -> dict[str, Any]:
        """Flat figures (`review_fraction`, `review_fraction_low`, `review_fraction_high`, ...) plus the rest."""
        out: dict[str, Any] = {"n_items": self.n_items, "n_sampled": self.n_sampled}
        for name in (*FIGURES, "seconds_specialists", "seconds_reviewer"):
            value = getattr(self, name)
            out |= {name: value.value, f"{name}_low": value.low, f"{name}_high": value.high}
        return out | {"seconds_training": self.seconds_training, "model": self.model, "tokenizer": self.tokenizer,
                      "notes": self.notes, "curve": self.curve, "reviewer": self.reviewer}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Estimate:
        figures = {name: Interval(data[name], data[f"{name}_low"], data[f"{name}_high"])
                   for name in (*FIGURES, "seconds_specialists", "seconds_reviewer")}  # fmt: skip
        rest = {k: data[k] for k in ("n_items", "n_sampled", "seconds_training", "model", "tokenizer", "notes", "curve")}
        return cls(**figures, **rest, reviewer=data.get("reviewer", {}))


def predict(
    *, n_items: int, population: int, n_sampled: int, n_hard: int, already_reviewed: int, already_waiting: int,
    seconds_per_item: list[float], costs: ReviewerCosts, distinct_share: float = 1.0, seconds_training: float = 0.0,
    curve: list[dict] | None = None,
) -> Estimate:  # fmt: skip
    """Scale the sample to the whole input.

    `population` items are still to be scored (non-empty, not yet in the run store), of which `n_sampled`
    were scored and `n_hard` routed to review; `already_waiting` hard items wait from an earlier session and
    `already_reviewed` were answered. `seconds_per_item` holds the specialists' time per item of each
    sample batch. `distinct_share` is the share of hard items whose request is not a copy of another's
    (identical texts are asked once)."""
    share = proportion_interval(n_hard, n_sampled, population)
    new_hard = share.scale(population)
    to_review = new_hard.plus(Interval.exact(already_waiting))
    reviewed = to_review.plus(Interval.exact(already_reviewed))
    calls = to_review.scale(costs.calls_per_item * distinct_share)
    prompt = calls.times(costs.prompt_tokens)
    completion = calls.times(costs.completion_tokens)
    cost = prompt.scale(costs.usd_per_prompt_token).plus(completion.scale(costs.usd_per_completion_token))
    specialists = mean_interval(seconds_per_item).scale(population)
    reviewer = to_review.times(costs.seconds_per_item).scale(1.0 / costs.concurrency)
    if costs.rate_limit and costs.calls_per_item:
        paced = calls.scale(1.0 / costs.rate_limit)
        reviewer = Interval(max(reviewer.value, paced.value), max(reviewer.low, paced.low), max(reviewer.high, paced.high))
    notes = list(costs.notes)
    if costs.max_cost_usd is not None and cost.high > costs.max_cost_usd:
        notes.append(f"--max-cost ${costs.max_cost_usd:g} may stop the reviewer before every hard item is asked "
                     "(the rest stay unresolved, reason budget)")  # fmt: skip
    if costs.max_calls is not None and calls.high > costs.max_calls:
        notes.append(f"--max-llm-calls {costs.max_calls} may stop the reviewer before every hard item is asked")
    return Estimate(
        n_items=n_items, n_sampled=n_sampled, review_fraction=reviewed.scale(1.0 / max(n_items, 1)), llm_calls=calls,
        prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost, seconds=specialists.plus(reviewer),
        seconds_specialists=specialists, seconds_reviewer=reviewer, seconds_training=seconds_training, model=costs.model,
        tokenizer=costs.tokenizer, notes=notes, curve=curve or [],
    )  # fmt: skip


def accuracy_curve(
    probs: np.ndarray, gold: np.ndarray, *, rule: Rule, epsilon: float | None, budget: float | None, seed: int = 0
) -> list[dict]:  # fmt: skip
    """Accuracy of the run's labels against review share, from out-of-fold probabilities on the seed.

    `probs` is (k, n, n_labels), `gold` (n,) label indices. Reviewed items count as correct (a reviewer who
    is always right: an upper bound for an LLM). One point per budget in CURVE_BUDGETS, ranked by the run's
    uncertainty rule; the configured routing is marked `configured: True`, as an extra point unless its budget
    is one of CURVE_BUDGETS (then that point is marked, not repeated). Rule 'learned': the aggregator is
    cross-fitted on `probs` too (`stacking.fit_aggregator`, folds from `seed`), so its labels and U are
    out-of-fold at both levels; a run routed by --target-accuracy (no epsilon, no budget) has no configured point."""
    on_curve = budget is not None and any(np.isclose(budget, b) for b in CURVE_BUDGETS)
    settings = [(b, None, on_curve and bool(np.isclose(budget, b))) for b in CURVE_BUDGETS]
    if not on_curve and (rule != "learned" or budget is not None or epsilon is not None):
        settings.append((budget, epsilon, True))
    if rule == "learned":
        from autoannotator.stacking import fit_aggregator

        oof = fit_aggregator(probs, gold, [str(i) for i in range(len(probs))], seed=seed)
        uncertainty, right = oof.seed_uncertainty, oof.seed_correct
    points = []
    for b, eps, configured in settings:
        if rule == "learned":
            hard = route_by_budget(uncertainty, b) if b is not None else route_by_threshold(uncertainty, eps)
        else:
            result = decide(probs, rule=rule, epsilon=eps, budget=b)
            hard, right = result.hard, result.labels == gold
        points.append({"review_fraction": float(hard.mean()), "accuracy": float(np.where(hard, True, right).mean()),
                       "consensus_accuracy": float(right.mean()), "configured": configured})  # fmt: skip
    return points


def actual_figures(store: RunStore) -> dict[str, float]:
    """What a run did, in the estimate's terms: share of items sent to review, paid LLM calls, tokens, $, and
    the seconds of its annotate sessions. The reviewer probe's calls, tokens and $ are left out: the estimate
    predicts the review, and reports the probe (paid by then) apart."""
    n_items = sum(store.count_by_state().values())
    sources = store.count_by_source()
    skipped = store.count_by_state().get("skipped", 0)
    usage = store.llm_usage().values()
    costs = [u["cost_usd"] for u in usage]
    from autoannotator.run.probing import stored_probe  # the run core imports this module

    probe = stored_probe(store)
    out = {
        "review_fraction": (n_items - sources.get("consensus", 0) - skipped) / n_items if n_items else 0.0,
        "llm_calls": sum(u["calls"] for u in usage) - (probe.calls if probe else 0),
        "prompt_tokens": sum(u["prompt_tokens"] for u in usage) - (probe.prompt_tokens if probe else 0),
        "completion_tokens": sum(u["completion_tokens"] for u in usage) - (probe.completion_tokens if probe else 0),
        "cost_usd": None if None in costs else sum(costs) - ((probe.cost_usd or 0.0) if probe else 0.0),  # None: a model's price is unknown
    }
    seconds = store.seconds_by_stage().get("total")
    return out | ({"seconds": seconds} if seconds else {})
