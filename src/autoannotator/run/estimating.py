"""`Annotator.estimate`: what a run would review, ask, pay and take, predicted from a scored sample through the
run's own stages (the pool, the router, the guarantee), paying nothing but the reviewer probe."""

from __future__ import annotations

import json
import math
import time
from collections import Counter

import numpy as np

from autoannotator.errors import AnnotatorError
from autoannotator.estimate import Estimate, accuracy_curve, predict, reviewer_costs
from autoannotator.items import InputItems
from autoannotator.run.loop import Loop
from autoannotator.run.pool import Seed
from autoannotator.store import RunStore


def estimate_run(loop: Loop, store: RunStore, items: InputItems, records: list[dict], seed_data: Seed | None, *, sample: int,
                 curve_folds: int, seconds_per_review: float | None) -> Estimate:  # fmt: skip
    """Ready the pool (trained or loaded, saved in the run so the run that follows reuses it), score a seeded random
    sample of `sample` items, count the reviewer's prompts for its hard items (`estimate.reviewer_costs`) and, with a
    seed, predict the accuracy-vs-review curve by `curve_folds`-fold cross-fitting (0: none). Kept in the run store
    (meta 'estimate'), where `evaluate` compares it with the run. Raises AnnotatorError before anything is paid for
    a pool with LLM voters on a server (scoring the sample would pay them) or a seed only a paid or human reviewer
    could label."""
    settings, pool = loop.settings, loop.pool
    if not loop.seed_known:
        raise AnnotatorError("estimate cannot train on --seed-label llm or human without asking them: give --seed, or --seed-label gold:COLUMN")
    paid = [spec.display_name for spec in pool.specs if spec.kind == "llm" and spec.options.get("base_url")]
    if paid:
        raise AnnotatorError(f"estimate would pay the LLM specialists {paid} to score its sample; estimate without them")
    seconds: dict[str, float] = {}
    seed_data = loop.ready(store, items, records, seed_data, seconds)
    done = store.processed_rows()
    population = [r for r in range(len(items)) if r not in done and items.texts[r].strip()]
    rng = np.random.default_rng(settings.random_seed)
    rows = sorted(int(r) for r in rng.choice(population, size=min(sample, len(population)), replace=False)) if population else []
    hard_rows, per_item = _score_sample(loop, store, rows, items)
    states = store.count_by_state()
    waiting = states.get("pending_review", 0)
    reviewed = len(done) - waiting - states.get("skipped", 0) - store.count_by_source().get("consensus", 0)
    curve = None
    if seed_data is not None and curve_folds > 1 and settings.mode != "llm-only":
        probs, gold = pool.seed_out_of_fold(seed_data, n_folds=curve_folds)
        curve = accuracy_curve(probs, gold, rule=settings.rule, epsilon=settings.epsilon, budget=settings.budget, seed=settings.random_seed)
    costs = reviewer_costs(loop.review.reviewer, pool.task, [items.texts[r] for r in hard_rows], store, seconds_per_review)
    copies = Counter(items.texts[r] for r in population)  # identical texts are asked once
    distinct = float(np.mean([1 / copies[items.texts[r]] for r in hard_rows])) if hard_rows else 1.0
    estimate = predict(
        n_items=len(items), population=len(population), n_sampled=len(rows), n_hard=len(hard_rows),
        already_reviewed=reviewed, already_waiting=waiting, seconds_per_item=per_item, costs=costs, distinct_share=distinct,
        seconds_training=sum(v for k, v in seconds.items() if k.startswith("fit:")), curve=curve,
    )  # fmt: skip
    estimate.reviewer = loop.probe.note
    estimate.notes += _notes(loop)
    with store.transaction():
        store.set_meta("estimate", json.dumps(estimate.to_dict()))
    return estimate


def _notes(loop: Loop) -> list[str]:
    """Why the estimate reviews what it does: audits counted in, a target accuracy the seed cannot certify."""
    settings = loop.settings
    notes = [f"the review share, calls and $ include the audit (--audit {settings.audit:g}: that share of the auto-accepted items)"] if settings.audit else []
    if loop.guarantee.active and loop.pool.aggregator is not None and loop.guarantee.threshold is None:
        caps = "; the review budget caps the review" if settings.budget is not None else ", so every item goes to review"
        notes.append(loop.guarantee.uncertified(loop.pool.n_seed) + caps)
    return notes


def _score_sample(loop: Loop, store: RunStore, rows: list[int], items: InputItems, batches: int = 5) -> tuple[list[int], list[float]]:
    """Score sampled rows in a few batches through the run's executor: (rows the reviewer will see: routed to
    review, or audited (--audit, the run's own draw); seconds per item of each batch). In llm-only mode every
    row goes to the reviewer."""
    if loop.settings.mode == "llm-only":
        return list(rows), [0.0]
    pool, router = loop.pool, loop.router
    seed_u = pool.aggregator.seed_uncertainty if pool.aggregator is not None else np.zeros(0)
    hard, per_item = [], []
    size = max(1, math.ceil(len(rows) / batches))
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        t0 = time.perf_counter()
        outcomes = pool.executor.score(batch, [items.texts[r] for r in batch], specialists=pool.specialists, labels=pool.task.label_names,
                                       settings=pool.consensus_settings(), run_dir=pool.run_dir, seconds={})  # fmt: skip
        per_item.append((time.perf_counter() - t0) / len(batch))
        outcomes = router.route_sample(outcomes, seed_u)
        hard += [r for r, outcome, audit in zip(batch, outcomes, router.audited(batch, outcomes)) if outcome.hard or audit]
    return hard, per_item
