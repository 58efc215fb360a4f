"""The figures of a run report, computed from what the run store holds (pure functions over its records):
routes, review cost and time, specialist-vs-reviewer agreement, uncertainty by route, accuracy against the
review budget, refinement rounds, the LLM ledger and the unresolved items by reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from autoannotator.store import ItemRecord

REVIEWER = "reviewer"
REVIEW_SOURCES = ("llm", "llm+consensus", "human", "gold")
ROUTE_ORDER = ("consensus", "llm", "llm+consensus", "human", "gold", "unresolved")


@dataclass
class Route:
    name: str
    items: int
    share: float


@dataclass
class Agreement:
    """Pairwise agreement on the reviewed items among the specialists and the reviewer.

    `names` has k specialists then 'reviewer'; `rate[i][j]` is the share of items both i and j labeled on
    which they gave the same label (None where they share no item), `count[i][j]` how many such items."""

    names: list[str]
    rate: list[list[float | None]]
    count: list[list[int]]

    def accuracy(self) -> list[tuple[str, float | None, int]]:
        """(specialist, agreement with the reviewer = its accuracy on reviewed items, items) per specialist."""
        last = len(self.names) - 1
        return [(self.names[i], self.rate[i][last], self.count[i][last]) for i in range(last)]


@dataclass
class BudgetCurve:
    """Accuracy (or agreement) at review budgets: the share of items reviewed, most uncertain first.

    `kind` is 'gold' (accuracy against gold labels; `oracle` the curve of a reviewer that is always right,
    `run` the curve of this run's reviewer up to the realised review share) or 'reviewed' (no gold: agreement
    with the run's final labels, the reviewer's answers taken as truth and consensus labels assumed right)."""

    kind: str
    run_budgets: list[float]
    run: list[float]
    budgets: list[float] = field(default_factory=list)
    oracle: list[float] = field(default_factory=list)
    realised_share: float = 0.0
    n_scored: int = 0


@dataclass
class LedgerRow:
    """One model's LLM calls: paid calls, cache hits, failed attempts, tokens, USD (None: price unknown), and
    latency percentiles (s)."""

    model: str
    calls: int
    cache_hits: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    seconds: float
    latency_p50: float | None
    latency_p90: float | None
    latency_p99: float | None


@dataclass
class ReasonGroup:
    """Unresolved items that share a reason, with up to a few of their texts as examples."""

    reason: str
    items: int
    examples: list[str]


def routes(counts: dict[str, int]) -> list[Route]:
    """Items and share per route (label_source), in the usual order."""
    total = sum(counts.values()) or 1
    names = [r for r in ROUTE_ORDER if r in counts] + sorted(r for r in counts if r not in ROUTE_ORDER)
    return [Route(name, counts[name], counts[name] / total) for name in names]


def reviewed(items: Sequence[ItemRecord]) -> list[ItemRecord]:
    """Items a reviewer (LLM, person, gold) labeled."""
    return [r for r in items if r.reviewed_label is not None and r.label_source in REVIEW_SOURCES]


def agreement(items: Sequence[ItemRecord], specialists: Sequence[str]) -> Agreement:
    """Pairwise agreement of the specialists' votes and the reviewer's answers on the reviewed items."""
    names = [*specialists, REVIEWER]
    answers = [[(r.votes.get(n) or {}).get("label") for n in specialists] + [r.reviewed_label] for r in reviewed(items)]
    k = len(names)
    rate: list[list[float | None]] = [[None] * k for _ in range(k)]
    count = [[0] * k for _ in range(k)]
    for i in range(k):
        for j in range(k):
            both = [(a[i], a[j]) for a in answers if a[i] is not None and a[j] is not None]
            count[i][j] = len(both)
            rate[i][j] = sum(x == y for x, y in both) / len(both) if both else None
    return Agreement(names=names, rate=rate, count=count)


def uncertainty_by_route(items: Sequence[ItemRecord]) -> dict[str, list[float]]:
    """The uncertainty of every scored item, grouped by its route."""
    groups: dict[str, list[float]] = {}
    for r in items:
        if r.uncertainty is not None:
            groups.setdefault(r.label_source, []).append(float(r.uncertainty))
    return {name: groups[name] for name in [n for n in ROUTE_ORDER if n in groups] + sorted(set(groups) - set(ROUTE_ORDER))}


def budget_curve(items: Sequence[ItemRecord], gold: Sequence[str | None] | None = None, *, steps: int = 20) -> BudgetCurve | None:
    """Accuracy against the review budget (the share of scored items reviewed, most uncertain first).

    At budget b the ⌈b·n⌉ most uncertain scored items take their reviewed outcome (the run's final label for
    the items it sent to review: the reviewer's answer, or the consensus label where the combination overruled
    it), the rest their consensus label. With `gold` (one value or None per item, in row order) it is accuracy on the items with gold; the
    `oracle` curve takes gold as the answer (a reviewer that is always right), the `run` curve this run's
    final label for the items it sent to review (none: unresolved counts as wrong), up to the
    realised review share, where it equals the run's accuracy on its scored items. Without gold, the `run`
    curve is the agreement with the final labels (reviewed outcomes as truth, consensus labels assumed right,
    unresolved items left out), or None if nothing was sent to review.
    Budget curves as in the paper's Table 5 and Fig. 4 (accuracy per share of items sent to review)."""
    scored = [(i, r) for i, r in enumerate(items) if r.uncertainty is not None]
    if not scored:
        return None
    order = sorted(scored, key=lambda pair: (-pair[1].uncertainty, pair[1].row))
    n = len(order)
    routed = [r.label_source != "consensus" for _, r in order]
    outcome = [r.label if routed[j] else r.consensus_label for j, (_, r) in enumerate(order)]  # the final label: under
    # combine a reviewed item can keep its consensus label over the reviewer's answer (label_source llm+consensus)
    realised = sum(routed) / n
    if gold is None:
        truth = [r.label for _, r in order]
        keep = [j for j in range(n) if truth[j] is not None]
        if realised == 0 or not keep:
            return None
    else:
        truth = [gold[i] for i, _ in order]
        keep = [j for j in range(n) if truth[j] is not None]
        if not keep:
            return None
    consensus = [r.consensus_label for _, r in order]
    budgets = [step / steps for step in range(steps + 1)]

    def accuracy(k: int, answer: Sequence[str | None], use: Sequence[bool]) -> float:
        hits = sum((answer[j] if j < k and use[j] else consensus[j]) == truth[j] for j in keep)
        return hits / len(keep)

    run_budgets = [b for b in budgets if b < realised] + [realised]  # the last point: the run's own outcome
    run = [accuracy(int(np.ceil(b * n)), outcome, routed) for b in run_budgets[:-1]] + [accuracy(n, outcome, routed)]
    if gold is None:
        return BudgetCurve(kind="reviewed", run_budgets=run_budgets, run=run, realised_share=realised, n_scored=n)
    oracle = [accuracy(int(np.ceil(b * n)), truth, [True] * n) for b in budgets]
    return BudgetCurve(kind="gold", run_budgets=run_budgets, run=run, budgets=budgets, oracle=oracle, realised_share=realised, n_scored=n)


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def ledger(usage: dict[str, dict[str, float]], latencies: dict[str, list[float]]) -> list[LedgerRow]:
    """One row per model from the store's LLM usage and the latencies of its paid calls."""
    return [
        LedgerRow(model=model, calls=int(u["calls"]), cache_hits=int(u["cache_hits"]), failed=int(u["failed"]),
                  prompt_tokens=int(u["prompt_tokens"]), completion_tokens=int(u["completion_tokens"]),
                  cost_usd=None if u["cost_usd"] is None else float(u["cost_usd"]), seconds=float(u["seconds"]),
                  latency_p50=percentile(latencies.get(model, []), 50), latency_p90=percentile(latencies.get(model, []), 90),
                  latency_p99=percentile(latencies.get(model, []), 99))
        for model, u in usage.items()
    ]  # fmt: skip


def unresolved_by_reason(items: Sequence[ItemRecord], reasons: Sequence[str], *, examples: int = 3) -> list[ReasonGroup]:
    """Unresolved items grouped by their reason (one per item, in the order of `items`), most frequent first."""
    groups: dict[str, list[ItemRecord]] = {}
    for record, reason in zip(items, reasons):
        if record.label_source == "unresolved":
            groups.setdefault(reason, []).append(record)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [ReasonGroup(reason, len(group), [r.text for r in group[:examples]]) for reason, group in ordered]
