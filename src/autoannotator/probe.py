"""The reviewer probe (`--reviewer-probe N`): before the paid review, the reviewer labels a seeded random sample
of seed items, and its answers are set beside the truth and the pool's out-of-fold labels on the same items.

The figures (`ProbeAnswers.figures`) are what the run summary's `reviewer` holds: accuracy with its 95% Wilson
interval, the confusion counts (rows: true label, columns: answer), the same on the subset the pool finds
uncertain (routed to review by the run's own rule), the pool's accuracy on both, and the guard's verdict:
`weaker` when the reviewer is not shown better than the pool on the uncertain items (its interval's lower bound
does not clear the pool's accuracy there; with no uncertain probe item, on the whole probe).
The answers kept (`ProbeAnswers`) also give what `--review-mode combine` needs: the confusion matrix it weighs
the reviewer's answers by (`reviewer_skill.reviewer_confusion`) and, for the rules whose probabilities are not
calibrated (vote, margin, entropy), the pool's posterior from its consensus label: the seed's label
frequencies times the pool's confusion, measured by the same estimator on the same probe items with the same
weights (towards the uncertain ones, `reviewer_skill.probe_weights`), so the two are matched (the learned
rule's aggregator gives a calibrated posterior per item instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from autoannotator.reviewer_skill import NO_ANSWER, accuracy_interval, combine, confusion_counts, not_better, probe_weights, reviewer_confusion


DEFAULT_PROBE = 100  # items, for an LLM reviewer (gold and human: 0)
PROBE_BASELINE_KEY = "reviewer_probe_baseline"  # store meta: the ledger's totals before this reviewer's probe paid, while it is asked


def probe_indices(n_seed: int, size: int, random_seed: int, exclude: Sequence[int] = ()) -> list[int]:
    """`size` seed indices (sorted): the first `size` of a permutation seeded by `random_seed`, so a larger probe
    holds a smaller one (its answers come from the reviewer's cache); never one in `exclude` (the reviewer's own
    few-shot examples: it would be shown the answer)."""
    allowed = np.array(sorted(set(range(n_seed)) - set(exclude)), dtype=int)
    if size <= 0 or not len(allowed):
        return []
    return sorted(int(i) for i in np.random.default_rng(random_seed).permutation(allowed)[:size])


def usage_totals(usage: dict[str, dict]) -> dict[str, float | None]:
    """The ledger's `llm_usage()` summed over models: paid calls, prompt and completion tokens, USD (None: a price is unknown)."""
    costs = [u["cost_usd"] for u in usage.values()]
    return {key: sum(int(u[key]) for u in usage.values()) for key in ("calls", "prompt_tokens", "completion_tokens")} | {
        "cost_usd": None if None in costs else float(sum(costs))}  # fmt: skip


@dataclass
class ProbeAnswers:
    """The probe as asked: per probed seed item (m,) its seed index, true label index, the reviewer's answer
    index (NO_ANSWER: none), the pool's out-of-fold label index and whether the pool found it uncertain;
    what the probe cost (USD, None when a price is unknown; paid LLM calls and their tokens; seconds), how many
    items were asked for, and (n_labels,) the seed's items per label."""

    requested: int
    seed_index: list[int]
    true: list[int]
    answer: list[int]
    pool: list[int]
    uncertain: list[bool]
    labels: list[str]
    cost_usd: float | None = 0.0
    calls: int = 0
    seconds: float = 0.0
    label_counts: list[int] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    uncertainty: list[float] | None = None  # (m,) the pool's out-of-fold U of each probed item (None: a probe stored before it was kept)

    def confusion(self) -> np.ndarray:
        """(n_labels, n_labels) what `combine` weighs the reviewer's answers by: P(answer | true label) by
        `reviewer_skill.reviewer_confusion` over the answered probe items, weighted towards the ones the pool
        finds uncertain, the kind it will review (`reviewer_skill.probe_weights`: uncertain items weight 1, the
        others only as much as tops a small uncertain subset up to PROBE_EFFECTIVE_ITEMS; a reviewer is weaker
        there than on random items: on 600 bundled tweets Gemma 3 270M was right on 56% of 100 random seed items
        but 43% of the items it reviewed). The same estimator, items and weights as `pool_posterior`'s, so that
        neither side of the combination is read more cautiously than the other (issue 20)."""
        true, answer = np.array(self.true, dtype=int), np.array(self.answer, dtype=int)
        answered = answer != NO_ANSWER
        weight = probe_weights(np.array(self.uncertain, dtype=bool)[answered])
        return reviewer_confusion(true[answered], answer[answered], len(self.labels), weight=weight)

    def pool_posterior(self, consensus_idx: np.ndarray) -> np.ndarray:
        """(n, n_labels) the pool's posterior given only its (n,) consensus label indices (NO_ANSWER: none): the
        seed's label frequencies (Laplace) times P(consensus | label), measured as `confusion` measures the
        reviewer (`reviewer_skill.reviewer_confusion` with the pool's out-of-fold label as the answer, on the
        same answered probe items with the same `probe_weights`; all probe items when the reviewer answered
        none)."""
        n_labels = len(self.labels)
        true, pool, answer = (np.array(v, dtype=int) for v in (self.true, self.pool, self.answer))
        on = answer != NO_ANSWER
        if not on.any():
            on = np.ones(len(true), dtype=bool)
        weight = probe_weights(np.array(self.uncertain, dtype=bool)[on])
        skill = reviewer_confusion(true[on], pool[on], n_labels, weight=weight)
        counts = np.asarray(self.label_counts if self.label_counts else np.zeros(n_labels), dtype=float) + 1.0
        prior = np.tile(counts / counts.sum(), (len(consensus_idx), 1))
        return combine(prior, np.asarray(consensus_idx, dtype=int), skill)

    def figures(self) -> dict:
        """The run summary's `reviewer` figures (see the module's notes); accuracies over answered items."""
        true, answer, pool = (np.array(v, dtype=int) for v in (self.true, self.answer, self.pool))
        uncertain = np.array(self.uncertain, dtype=bool)
        answered = answer != NO_ANSWER
        whole = accuracy_interval(int((answer == true)[answered].sum()), int(answered.sum()))
        hard = answered & uncertain
        on_hard = accuracy_interval(int((answer == true)[hard].sum()), int(hard.sum()))
        pool_whole = float((pool == true)[answered].mean()) if answered.any() else None
        pool_hard = float((pool == true)[hard].mean()) if hard.any() else None
        weaker = not_better(on_hard, pool_hard) if hard.any() else not_better(whole, pool_whole)
        counts = confusion_counts(true, answer, len(self.labels)).astype(int).tolist()
        return {
            "probe_items": len(self.true), "answered": int(answered.sum()),
            "accuracy": whole.value, "accuracy_low": whole.low, "accuracy_high": whole.high,
            "pool_accuracy_on_probe": pool_whole,
            "uncertain_probe_items": int(hard.sum()),
            "accuracy_on_uncertain_probe": on_hard.value, "accuracy_on_uncertain_low": on_hard.low, "accuracy_on_uncertain_high": on_hard.high,
            "pool_accuracy_on_uncertain_probe": pool_hard,
            "weaker_than_pool": bool(weaker), "not_shown_better": bool(weaker),
            "labels": list(self.labels), "confusion": counts,
            "cost_usd": self.cost_usd, "calls": self.calls, "seconds": round(self.seconds, 3),
        }  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)


def guard_line(figures: dict) -> str:
    """One line with the figures behind the guard's verdict."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    if figures["uncertain_probe_items"]:
        return (f"on the {figures['uncertain_probe_items']} probe items the pool finds uncertain the reviewer is right "
                f"{pct(figures['accuracy_on_uncertain_probe'])} (95% interval {pct(figures['accuracy_on_uncertain_low'])}-"
                f"{pct(figures['accuracy_on_uncertain_high'])}), the pool {pct(figures['pool_accuracy_on_uncertain_probe'])}")  # fmt: skip
    return (f"on {figures['answered']} probe items the reviewer is right {pct(figures['accuracy'])} (95% interval "
            f"{pct(figures['accuracy_low'])}-{pct(figures['accuracy_high'])}), the pool {pct(figures['pool_accuracy_on_probe'])}")  # fmt: skip
