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
frequencies times the pool's one-coin confusion measured on the uncertain probe items (the learned rule's
aggregator gives a calibrated posterior per item instead).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from autoannotator.reviewer_skill import NO_ANSWER, accuracy_interval, combine, confusion_counts, not_better, one_coin, reviewer_confusion

if TYPE_CHECKING:
    from autoannotator.store import RunStore

DEFAULT_PROBE = 100  # items, for an LLM reviewer (gold and human: 0)
PROBE_KEY = "reviewer_probe"  # store meta: the probe's answers (JSON of ProbeAnswers), read back by a resumed run
PROBE_BASELINE_KEY = "reviewer_probe_baseline"  # store meta: the ledger's totals less all probes' spend, while a probe is asked


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


def probe_baseline(store: RunStore) -> dict[str, float | None]:
    """What the ledger held before any probe paid: kept (meta PROBE_BASELINE_KEY) from the first session that began
    asking this probe, so a probe killed and asked again, or asked again at another size, counts what every session
    paid for it: the current totals less the spend of the probe already stored (if any)."""
    kept = store.get_meta(PROBE_BASELINE_KEY)
    if kept:
        return json.loads(kept)
    totals, previous = usage_totals(store.llm_usage()), stored_probe(store)
    if previous is not None:
        totals = {key: totals[key] - getattr(previous, key) for key in ("calls", "prompt_tokens", "completion_tokens")} | {
            "cost_usd": None if totals["cost_usd"] is None else totals["cost_usd"] - (previous.cost_usd or 0.0)}  # fmt: skip
    with store.transaction():
        store.set_meta(PROBE_BASELINE_KEY, json.dumps(totals))
    return totals


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

    def confusion(self) -> np.ndarray:
        """(n_labels, n_labels) what `combine` weighs the reviewer's answers by (`reviewer_confusion`), measured on
        the probe items the pool finds uncertain, the kind it will review (a reviewer is weaker there than on
        random items: on 600 bundled tweets Gemma 3 270M was right on 56% of 100 random seed items but 43% of the
        items it reviewed); on all probe items when none is uncertain. Few uncertain items give a wide interval,
        which `reviewer_confusion` reads conservatively (towards chance: the answer moves less)."""
        true, answer = np.array(self.true, dtype=int), np.array(self.answer, dtype=int)
        uncertain = np.array(self.uncertain, dtype=bool) & (answer != NO_ANSWER)
        if uncertain.any():
            true, answer = true[uncertain], answer[uncertain]
        return reviewer_confusion(true, answer, len(self.labels))

    def pool_posterior(self, consensus_idx: np.ndarray) -> np.ndarray:
        """(n, n_labels) the pool's posterior given only its (n,) consensus label indices (NO_ANSWER: none): the
        seed's label frequencies (Laplace) times P(consensus | label) of the one-coin matrix at the pool's accuracy
        on the uncertain probe items (Laplace; all probe items when none is uncertain)."""
        n_labels = len(self.labels)
        true, pool = np.array(self.true, dtype=int), np.array(self.pool, dtype=int)
        uncertain = np.array(self.uncertain, dtype=bool)
        on = uncertain if uncertain.any() else np.ones(len(true), dtype=bool)
        accuracy = ((pool == true)[on].sum() + 1.0) / (on.sum() + 2.0)
        counts = np.asarray(self.label_counts if self.label_counts else np.zeros(n_labels), dtype=float) + 1.0
        prior = np.tile(counts / counts.sum(), (len(consensus_idx), 1))
        return combine(prior, np.asarray(consensus_idx, dtype=int), one_coin(accuracy, n_labels))

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


def stored_probe(store: RunStore) -> ProbeAnswers | None:
    """The probe kept in a run store (meta PROBE_KEY), None when the run had none."""
    stored = store.get_meta(PROBE_KEY)
    return ProbeAnswers(**json.loads(stored)) if stored else None


def probe_figures(store: RunStore) -> dict:
    """The figures of the probe kept in a run store; {} when the run had none."""
    probe = stored_probe(store)
    return probe.figures() if probe else {}
