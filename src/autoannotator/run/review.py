"""Stage 5 of a run: review. Ask the reviewer about the pending items (hard ones before audited ones), keep its
answers, and under `--review-mode combine` conclude each reviewed item's label from the pool's posterior and the
reviewer's measured confusion (`reviewer_skill.combine`; the confusion comes from the probe, `run.probing`)."""

from __future__ import annotations

import time

import numpy as np

from autoannotator.probe import ProbeAnswers
from autoannotator.reviewer_skill import NO_ANSWER, combine
from autoannotator.reviewers import Reviewer, ReviewItem
from autoannotator.reviewers.base import Answer
from autoannotator.run.pool import Pool
from autoannotator.store import COMBINED_SOURCE, ItemRecord, RunStore


class Review:
    """The review stage of one run. `confusion` (n_labels, n_labels) and `probe` are set by the probe when the run
    combines; `posteriors` keeps each hard item's pool posterior (rule 'learned') from scoring until it is reviewed."""

    def __init__(self, reviewer: Reviewer | None, pool: Pool) -> None:
        self.reviewer, self.pool = reviewer, pool
        self.confusion: np.ndarray | None = None
        self.probe: ProbeAnswers | None = None
        self.posteriors: dict[int, np.ndarray] = {}

    @property
    def combines(self) -> bool:
        """Answers are combined with the pool (a measured confusion is in hand)."""
        return self.confusion is not None and self.probe is not None

    def keep_posterior(self, row: int, posterior: tuple[float, ...]) -> None:
        """Keep a hard item's pool posterior (rule 'learned') for combine."""
        if self.combines and self.pool.used_rule == "learned" and posterior:
            self.posteriors[row] = np.array(posterior)

    def review(self, store: RunStore, pending: list[ItemRecord], texts: list[str], records: list[dict], seconds: dict[str, float],
               reviewer: Reviewer | None = None) -> None:  # fmt: skip
        """Ask `reviewer` (default: the run's) about pending items, the hard ones before the audited ones (under
        --max-llm-calls or --max-cost the cap goes to the labels the run needs first); store its valid answers,
        leave the rest unresolved. `texts` and `records`: every input item's text and input record, by row.
        Answers of another reviewer than the run's (the cold-start seed reviewer) are never combined."""
        reviewer = reviewer or self.reviewer
        if reviewer is None or not pending:
            return
        t0 = time.perf_counter()
        queue = [
            ReviewItem(row=r.row, item_id=r.item_id, text=texts[r.row], votes=r.votes, consensus_label=r.consensus_label, record=records[r.row])
            for r in sorted(pending, key=lambda r: r.audited)
        ]  # fmt: skip
        reviewer.attach(store)
        answers = reviewer.review(queue)
        if not reviewer.saves_own_answers:
            combined = self._combined(store, queue, answers, seconds) if reviewer is self.reviewer else {}
            store.save_reviews(
                ((item.row, reviewer.source, a.label, a.probs, a.detail | ({"reason": a.reason} if a.reason else {})
                  | ({"combined": combined[item.row][1]} if item.row in combined else {}))
                 for item, a in zip(queue, answers)),
                concluded={row: label for row, (label, _) in combined.items()},
            )  # fmt: skip
        seconds["review"] = seconds.get("review", 0.0) + time.perf_counter() - t0

    def _combined(self, store: RunStore, queue: list[ReviewItem], answers: list[Answer], seconds: dict[str, float]) -> dict[int, tuple[str, dict[str, float]]]:
        """--review-mode combine: row -> (the label the run concludes, the combined posterior) for each answered item:
        the argmax of the pool's posterior times the reviewer's measured P(answer | label). The pool's posterior:
        rule 'learned', the aggregator's (kept from scoring, else the pool scores the item again: a resumed run);
        other rules, from the consensus label and the pool's skill measured by the probe
        (`ProbeAnswers.pool_posterior`). Empty in override mode or without a measured confusion."""
        if not self.combines:
            return {}
        names = self.pool.task.label_names
        answered = [(item, a) for item, a in zip(queue, answers) if a.label in names]
        if not answered:
            return {}
        if self.pool.used_rule == "learned":
            prior = self._pool_posteriors(store, [item for item, _ in answered], seconds)
        else:
            prior = self.probe.pool_posterior(np.array([names.index(i.consensus_label) if i.consensus_label in names else NO_ANSWER
                                                        for i, _ in answered], dtype=int))  # fmt: skip
        posterior = combine(prior, np.array([names.index(a.label) for _, a in answered], dtype=int), self.confusion)
        return {item.row: (names[int(p.argmax())], {n: round(float(v), 4) for n, v in zip(names, p)}) for (item, _), p in zip(answered, posterior)}

    def _pool_posteriors(self, store: RunStore, items: list[ReviewItem], seconds: dict[str, float]) -> np.ndarray:
        """(n, n_labels) the learned aggregator's posterior for `items`: kept from scoring, else scored again (a
        resumed run; a Ray block written before posteriors were kept has none: zeros, which combine reads as uniform)."""
        missing = [item for item in items if item.row not in self.posteriors]
        if missing:
            outcomes = self.pool.score(store, [i.row for i in missing], [i.text for i in missing], [i.item_id for i in missing], seconds)
            n_labels = len(self.pool.task.label_names)
            self.posteriors |= {item.row: np.array(o.posterior or [0.0] * n_labels) for item, o in zip(missing, outcomes)}
        return np.stack([self.posteriors.pop(item.row) for item in items])

    def combined_counts(self, store: RunStore) -> dict[str, int]:
        """In combine mode: answered items whose label is the reviewer's answer, and those where the combination
        kept another label (label_source llm+consensus)."""
        if self.confusion is None or self.reviewer is None:
            return {}
        counts = store.count_by_source()
        return {"answer_kept": counts.get(self.reviewer.source, 0), "answer_overruled": counts.get(COMBINED_SOURCE, 0)}
