"""Stage 5a of a run: the reviewer probe (`autoannotator.probe` holds its figures). Before any paid review the
reviewer answers `--reviewer-probe N` random seed items (never its own few-shot examples); their figures go to
the summary, their confusion to combine, and the guard warns (or, with --require-better-reviewer, stops) when the
reviewer is not shown better than the pool on the items the pool finds uncertain. The probe is kept in the store's
typed tables under the reviewer's identity (kind, model, base URL, prompt, shots): a resumed run with the same
reviewer reads it back, another reviewer is probed anew."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from typing import Any

import numpy as np

from autoannotator.consensus import decide
from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.probe import PROBE_BASELINE_KEY, ProbeAnswers, guard_line, probe_indices, usage_totals
from autoannotator.reviewer_skill import NO_ANSWER
from autoannotator.reviewer_worth import expected_output_accuracy, reviewer_worth
from autoannotator.reviewers import Reviewer, ReviewItem
from autoannotator.run.pool import Pool, Seed
from autoannotator.run.review import Review
from autoannotator.run.router import Router
from autoannotator.run.settings import RunSettings
from autoannotator.scoring import DRIVER_ROUTES
from autoannotator.store import RunStore
from autoannotator.store.run_state import ProbeRecord, ProbeRow


WORTH_KEY = "reviewer_worth"  # store meta: the last `reviewer_worth` table, shown by the run report


def reviewer_key(reviewer: Reviewer) -> tuple[str, str]:
    """(a hash of the reviewer's identity, that identity as JSON): what a stored probe belongs to."""
    identity = json.dumps(reviewer.identity(), sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()[:32], identity


def stored_probe(store: RunStore, key: str | None = None) -> ProbeAnswers | None:
    """The probe kept in a run store for the reviewer `key` (None: the newest), None when there is none."""
    record = store.state.probe(key)
    if record is None:
        return None
    rows = record.rows
    return ProbeAnswers(
        requested=record.requested, seed_index=[r.seed_index for r in rows], true=[r.true_label for r in rows], answer=[r.answer for r in rows],
        pool=[r.pool_label for r in rows], uncertain=[r.uncertain for r in rows], labels=record.labels, cost_usd=record.cost_usd,
        calls=record.calls, seconds=record.seconds, label_counts=record.label_counts, prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        uncertainty=None if any(r.uncertainty is None for r in rows) else [r.uncertainty for r in rows],
    )  # fmt: skip


def probe_figures(store: RunStore) -> dict:
    """The figures of the newest probe kept in a run store, with what the reviewer is worth (`worth`) when the run
    computed it; {} when the run had no probe."""
    probe = stored_probe(store)
    worth = json.loads(store.get_meta(WORTH_KEY) or "null")
    return (probe.figures() | ({"worth": worth} if worth else {})) if probe else {}


def _record(answers: ProbeAnswers, key: str, identity: str) -> ProbeRecord:
    u = answers.uncertainty or [None] * len(answers.true)
    rows = [ProbeRow(*values) for values in zip(answers.seed_index, answers.true, answers.answer, answers.pool, answers.uncertain, u)]
    return ProbeRecord(reviewer_key=key, reviewer=identity, requested=answers.requested, labels=list(answers.labels), label_counts=answers.label_counts,
                       cost_usd=answers.cost_usd, calls=answers.calls, prompt_tokens=answers.prompt_tokens,
                       completion_tokens=answers.completion_tokens, seconds=answers.seconds, rows=rows)  # fmt: skip


def probe_baseline(store: RunStore, key: str) -> dict[str, float | None]:
    """What the ledger held before any probe of this reviewer paid: kept (meta PROBE_BASELINE_KEY) from the first
    session that began asking it, so a probe killed and asked again, or asked again at another size, counts what
    every session paid for it: the current totals less the spend of the probe already stored (if any)."""
    kept = json.loads(store.get_meta(PROBE_BASELINE_KEY) or "null")
    if kept is not None and kept.get("reviewer_key") == key:
        return kept["totals"]
    totals, previous = usage_totals(store.llm_usage()), stored_probe(store, key)
    if previous is not None:
        totals = {k: totals[k] - getattr(previous, k) for k in ("calls", "prompt_tokens", "completion_tokens")} | {
            "cost_usd": None if totals["cost_usd"] is None else totals["cost_usd"] - (previous.cost_usd or 0.0)}  # fmt: skip
    with store.transaction():
        store.set_meta(PROBE_BASELINE_KEY, json.dumps({"reviewer_key": key, "totals": totals}))
    return totals


class Probe:
    """Probes the run's reviewer and hands its measured confusion to the review stage (combine)."""

    def __init__(self, settings: RunSettings, pool: Pool, router: Router, review: Review) -> None:
        self.settings, self.pool, self.router, self.review = settings, pool, router, review
        self.guarantee = router.guarantee
        self.note: dict[str, Any] = {}
        self.answers: ProbeAnswers | None = None  # the probe in force (answered items), once asked or read back

    def run(self, store: RunStore, seed_data: Seed | None, seed_known: bool, seconds: dict[str, float], n_items: int = 0) -> None:
        """Probe the reviewer (or say why not) and set `review.confusion` when the run combines. `seed_known`: the
        seed's labels are known without paying (a seed file, or --seed-label gold). Raises AnnotatorError under
        --require-better-reviewer when the reviewer is not shown better than the pool."""
        reviewer = self.review.reviewer
        self.note = {"review_mode": self.settings.review_mode} if reviewer is not None else {}
        if reviewer is None:
            return
        if self.settings.mode != "specialists":
            return self._without("--mode llm-only: no pool to measure the reviewer against or combine with")
        if not self.settings.reviewer_probe:
            return self._without("no probe (--reviewer-probe 0)")
        if seed_data is None or not seed_known:
            return self._without("no probe: it needs a seed with known labels (--seed or --seed-label gold:COLUMN)")
        key, identity = reviewer_key(reviewer)
        answers = stored_probe(store, key)
        if answers is None or answers.requested != self.settings.reviewer_probe:
            answers = self._ask(store, reviewer, key, seed_data, seconds)
            with store.transaction():
                store.state.save_probe(_record(answers, key, identity))
                store.delete_meta(PROBE_BASELINE_KEY)
        figures = answers.figures()
        self.note |= figures
        if not figures["answered"]:
            return self._empty(figures)
        self.guarantee.reviewer_counts = np.array(figures["confusion"], dtype=float)  # the audit guard corrects for it
        self.answers = answers
        self._worth(answers, figures, n_items)
        if "worth" in self.note:  # for the run report (a figure to read, nothing decides on it)
            with store.transaction():
                store.set_meta(WORTH_KEY, json.dumps(self.note["worth"]))
        if self.settings.review_mode == "combine":
            self.review.confusion, self.review.probe = answers.confusion(), answers
        if figures["weaker_than_pool"]:
            line = f"the reviewer is not shown better than the specialists: {guard_line(figures)}"
            if self.settings.require_better_reviewer:
                raise AnnotatorError(f"--require-better-reviewer: {line}; stopped before the review (the probe is kept: a rerun pays nothing for it)")
            how = "combined with the pool by its measured confusion" if self.settings.review_mode == "combine" else "taken as they are (--review-mode override)"
            warnings.warn(f"{line}; its answers are {how} (a stronger --llm-model, or --require-better-reviewer to stop before paying for "
                          "the review; the expected-accuracy table shows what each review share is worth with it)", InputWarning, stacklevel=2)  # fmt: skip

    def _worth(self, answers: ProbeAnswers, figures: dict, n_items: int) -> None:
        """What the reviewer is worth at each review share (`reviewer_worth`), into the note; an InputWarning, before
        any review is paid, when the reviewer alone is expected to beat the chosen setting."""
        if answers.uncertainty is None or not n_items:
            return
        true, answer, pool = (np.array(v, dtype=int) for v in (answers.true, answers.answer, answers.pool))
        u, answered = np.array(answers.uncertainty, dtype=float), answer != NO_ANSWER
        aggregator = self.pool.aggregator
        if aggregator is not None and aggregator.seed_correct is not None:
            seed_u, seed_right = aggregator.seed_uncertainty[: self.pool.n_seed], aggregator.seed_correct[: self.pool.n_seed]
        else:
            seed_u, seed_right = u, pool == true
        per_review = answers.cost_usd / figures["answered"] if answers.cost_usd is not None else None
        chosen = self.settings.budget if self.settings.budget is not None else float(np.mean(answers.uncertain))
        worth = reviewer_worth(seed_u, seed_right, u[answered], (answer == true)[answered], n_items=n_items, cost_per_review=per_review,
                               chosen_share=chosen)  # fmt: skip
        self.note["worth"] = worth
        self.note["expected_accuracy"] = worth["chosen"]["accuracy"]
        if worth["alone_better"]:
            warnings.warn(f"the reviewer alone is expected to beat this setting: {worth['reviewer_alone']['accuracy']:.1%} on every item against "
                          f"{worth['chosen']['accuracy']:.1%} with {chosen:.0%} reviewed (from the probe's {worth['probe_items']} items; "
                          "--review-mode override with a larger --budget, or --mode llm-only, would label better)", InputWarning, stacklevel=3)  # fmt: skip

    def expected_after(self, store: RunStore) -> dict[str, Any]:
        """After the run, the learned rule: the output's expected accuracy from its own items (`expected_output_accuracy`:
        accepted items at their calibrated posterior, reviewed ones at the probe's r(U), unresolved ones wrong), for
        the summary beside the realised figures a gold column would give; {} without a probe or the learned rule."""
        answers = self.answers
        if answers is None or answers.uncertainty is None or self.pool.used_rule != "learned":
            return {}
        true, answer = np.array(answers.true, dtype=int), np.array(answers.answer, dtype=int)
        answered = answer != NO_ANSWER
        rows = store.conn.execute("SELECT uncertainty, label_source, reviewed_label IS NOT NULL AS reviewed FROM items WHERE uncertainty IS NOT NULL").fetchall()
        accepted = np.array([r[0] for r in rows if r[1] == "consensus" and not r[2]], dtype=float)
        reviewed = np.array([r[0] for r in rows if r[2]], dtype=float)
        if not len(rows):
            return {}
        expected = expected_output_accuracy(accepted, reviewed, np.array(answers.uncertainty)[answered], (answer == true)[answered])
        return {"expected_accuracy": round(expected * (len(accepted) + len(reviewed)) / len(rows), 4),
                "expected_accuracy_basis": "this run's items: accepted at the learned consensus's posterior, reviewed at the probe's accuracy at their U"}  # fmt: skip

    def _without(self, why: str) -> None:
        """No probe (`why`): combine has no measured confusion, so the reviewer's answers override (and the summary says so)."""
        if self.settings.review_mode == "combine":
            self.note |= {"review_mode": "override", "note": f"{why}; combine needs the reviewer's measured confusion, so its answers override"}

    def _empty(self, figures: dict) -> None:
        """A probe with no answered item measured nothing: --require-better-reviewer stops, otherwise a warning and,
        as without a probe, the reviewer's answers override."""
        asked = figures["probe_items"]
        why = ("the reviewer probe measured nothing: "
               + (f"none of the {asked} probe items got a usable answer" if asked else "no seed item was left to ask (all are the reviewer's few-shot examples)"))  # fmt: skip
        if self.settings.require_better_reviewer:
            raise AnnotatorError(f"--require-better-reviewer: {why}, so the reviewer is not shown better than the specialists; stopped before the review")
        self._without(why)
        warnings.warn(f"{why}; the reviewer's answers are taken as they are", InputWarning, stacklevel=3)

    def _ask(self, store: RunStore, reviewer: Reviewer, key: str, seed_data: Seed, seconds: dict[str, float]) -> ProbeAnswers:
        """Ask the reviewer about the probe's seed items and set its answers beside the pool's out-of-fold labels
        (cross-fitted on the seed as the learned rule is) and the run's routing of them."""
        reviewer.check_ready()
        started = time.perf_counter()
        texts, labels = seed_data
        shown = {example.text for example in reviewer.examples}
        picked = probe_indices(len(texts), self.settings.reviewer_probe, self.settings.random_seed, exclude=[i for i, t in enumerate(texts) if t in shown])
        baseline = probe_baseline(store, key)  # before the pool's voters score the probe items: their calls count in the probe
        probs, targets = self.pool.seed_out_of_fold(seed_data, rows=picked)
        settings = self.pool.consensus_settings()
        epsilon = None if settings.epsilon == DRIVER_ROUTES else settings.epsilon
        if epsilon is None and self.settings.budget is None and self.pool.used_rule != "vote":
            epsilon = 1.0  # --target-accuracy routes by its certified threshold below
        outcome = decide(probs[:, picked], rule=self.pool.used_rule, epsilon=epsilon, budget=self.settings.budget, aggregator=self.pool.aggregator)
        uncertain = self.router.uncertain(outcome.hard, outcome.uncertainty)
        names = self.pool.task.label_names
        queue = [ReviewItem(row=-1 - i, item_id=f"probe-{i}", text=texts[i], votes={}, consensus_label=names[int(outcome.labels[j])])
                 for j, i in enumerate(picked)]  # fmt: skip
        reviewer.attach(store)
        given = reviewer.answer_probe(queue)
        after = usage_totals(store.llm_usage())
        spent = {k: int(after[k] - baseline[k]) for k in ("calls", "prompt_tokens", "completion_tokens")}
        cost = None if after["cost_usd"] is None else after["cost_usd"] - (baseline["cost_usd"] or 0.0)
        seconds["probe"] = seconds.get("probe", 0.0) + time.perf_counter() - started
        return ProbeAnswers(
            requested=self.settings.reviewer_probe, seed_index=picked, true=[int(targets[i]) for i in picked],
            answer=[names.index(a.label) if a.label in names else NO_ANSWER for a in given], pool=[int(v) for v in outcome.labels],
            uncertain=[bool(h) for h in np.asarray(uncertain)], labels=list(names), cost_usd=cost, **spent,
            uncertainty=[round(float(u), 6) for u in outcome.uncertainty],
            seconds=time.perf_counter() - started, label_counts=np.bincount(targets, minlength=len(names)).tolist(),
        )  # fmt: skip
