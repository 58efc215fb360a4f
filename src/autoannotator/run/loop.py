"""Stage 6 of a run: the loop. Ready the pool (cold-start seed, specialists, aggregator, certificate, probe), then
chunk by chunk: score through the executor, route, store the chunk in one transaction, review, guard, refine.
Everything a decision needs is in the run store, so a killed run resumes where it stopped and never pays twice."""

from __future__ import annotations

import time
import warnings

import numpy as np

from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.items import InputItems
from autoannotator.progress import progress_bar
from autoannotator.refine import RESCORE_KEY, Labeled, Refiner
from autoannotator.reviewers import Reviewer
from autoannotator.reviewers.gold import GoldReviewer
from autoannotator.run.guarantee import Guarantee
from autoannotator.run.pool import Pool, Seed
from autoannotator.run.probing import Probe
from autoannotator.run.review import Review
from autoannotator.run.router import Router
from autoannotator.run.settings import RunSettings
from autoannotator.scoring import Scored
from autoannotator.stacking import AGGREGATOR_DIR
from autoannotator.store import ItemRecord, RunStore
from autoannotator.task import Example


class Loop:
    """The run loop over the stages of one run (see `autoannotator.run`)."""

    def __init__(self, settings: RunSettings, pool: Pool, router: Router, guarantee: Guarantee, review: Review, probe: Probe,
                 refiner: Refiner | None, seed_reviewer: Reviewer | None) -> None:  # fmt: skip
        self.settings, self.pool, self.router, self.guarantee = settings, pool, router, guarantee
        self.review, self.probe, self.refiner, self.seed_reviewer = review, probe, refiner, seed_reviewer
        self.seed_rationales: dict[str, str] = {}  # item text -> worked solution, from a multiple-choice seed file

    @property
    def seed_known(self) -> bool:
        """The seed's labels are known without a paid or human reviewer (a seed file, or --seed-label gold)."""
        return self.seed_reviewer is None or isinstance(self.seed_reviewer, GoldReviewer)

    def ready(self, store: RunStore, items: InputItems, records: list[dict], seed_data: Seed | None, seconds: dict[str, float]) -> Seed | None:
        """Label the cold-start seed if asked, load or train the pool, fit or load the aggregator and its certificate,
        give the reviewer its examples, probe it; returns the seed."""
        if self.seed_reviewer is not None:
            seed_data = self._seed_by_reviewer(store, items, records, seconds)
        self.pool.prepare(store, seed_data, seconds)
        examples = [Example(text=t, label=y, rationale=self.seed_rationales.get(t)) for t, y in zip(*(seed_data or ((), ())))]
        self.pool.attach(store, examples)
        if self.settings.rule == "learned" and self.settings.mode == "specialists":
            self._check_seed_labels(seed_data)
            self.pool.prepare_aggregator(store, seed_data, seconds, refit_on=self._known(store, seed_data))
            self._certify(store)
        if self.review.reviewer is not None and examples:
            self.review.reviewer.use_examples(examples)
        self.probe.run(store, seed_data, self.seed_known, seconds, n_items=len(items))
        return seed_data

    def _check_seed_labels(self, seed_data: Seed | None) -> None:
        """Rule 'learned' gives only labels its seed holds (the aggregator never learned the others): refused under
        --target-accuracy (its certificate would not cover them), else an InputWarning naming them."""
        if seed_data is None:
            return
        missing = [name for name in self.pool.task.label_names if name not in set(seed_data[1])]
        if not missing:
            return
        line = f"the seed has no item labeled {missing}: the learned consensus can never give {'that label' if len(missing) == 1 else 'those labels'}"
        if self.guarantee.active:
            raise AnnotatorError(f"{line}, so --target-accuracy cannot certify the run; add seed items with {'it' if len(missing) == 1 else 'them'}")
        warnings.warn(f"{line} (items of it go wrong or to review); add seed items with {'it' if len(missing) == 1 else 'them'}", InputWarning, stacklevel=3)

    def run(self, store: RunStore, items: InputItems, records: list[dict], seed_data: Seed | None, seconds: dict[str, float]) -> None:
        """Review what a killed run left pending, then label every item not yet stored, chunk by chunk."""
        self.review.review(store, store.pending_review(), items.texts, records, seconds)
        done_before = store.processed_rows()
        self.guarantee.guard(store, [], n_done=len(done_before))  # what a killed session left to review has been answered now
        self._refine_while_due(store, seed_data, items, records, seconds)
        todo = [row for row in range(len(items)) if row not in done_before]
        with progress_bar(len(items), done=len(done_before), enabled=self.settings.progress, description="annotating") as advance:
            for start in range(0, len(todo), self.settings.chunk_size):
                chunk = todo[start : start + self.settings.chunk_size]
                self._label_chunk(store, chunk, items, seconds)
                self.review.review(store, store.pending_review(chunk), items.texts, records, seconds)
                self.guarantee.guard(store, chunk, n_done=len(done_before) + start + len(chunk))
                self._refine_while_due(store, seed_data, items, records, seconds)
                advance(len(chunk))

    def _certify(self, store: RunStore) -> None:
        """Certify the active aggregator (bound to the pool's versions) when the run has a target accuracy."""
        relative = store.get_meta("aggregator") or AGGREGATOR_DIR
        self.guarantee.certify(store, self.pool.aggregator, self.pool.n_seed, self.pool.versions(store), relative)

    def _known(self, store: RunStore, seed_data: Seed | None) -> Seed | None:
        """The seed followed by every reviewed item: what a refinement refit fits the aggregator on."""
        reviewed = Labeled.of(store.labeled_by_review() + store.labeled_by_review(gate=True))
        known = Labeled(*seed_data) + reviewed if seed_data else reviewed
        return (known.texts, known.labels) if len(known) else None

    def _label_chunk(self, store: RunStore, rows: list[int], items: InputItems, seconds: dict[str, float]) -> None:
        """Run the pool on one chunk, route it and store the chunk in one transaction."""
        texts = [items.texts[r] for r in rows]
        scored = [i for i, t in enumerate(texts) if t.strip()]
        empty = sorted(set(range(len(rows))) - set(scored))
        records = [self._waiting(rows[i], items, state="skipped") for i in empty]
        if scored and self.settings.mode == "llm-only":
            records += [self._waiting(rows[i], items, state="pending_review") for i in scored]
        elif scored:
            chosen = [rows[i] for i in scored]
            outcomes = self.pool.score(store, chosen, [texts[i] for i in scored], [items.ids[r] for r in chosen], seconds)
            seed_u = self.pool.aggregator.seed_uncertainty if self.pool.aggregator is not None else np.zeros(0)
            outcomes = self.router.route_chunk(store, outcomes, len(items), seed_u)
            for row, outcome, audit in zip(chosen, outcomes, self.router.audited(chosen, outcomes)):
                records.append(self._record(row, items, outcome, audited=audit))
                if outcome.hard:
                    self.review.keep_posterior(row, outcome.posterior)
        t0 = time.perf_counter()
        store.save_items(sorted(records, key=lambda r: r.row))
        self.router.stored(len(records), sum(1 for r in records if r.state == "pending_review" and not r.audited))
        seconds["store"] = seconds.get("store", 0.0) + time.perf_counter() - t0

    @staticmethod
    def _waiting(row: int, items: InputItems, *, state: str, seed: bool = False) -> ItemRecord:
        """An item stored without a consensus: skipped (empty text) or waiting for its reviewer (llm-only, seed)."""
        return ItemRecord(row=row, item_id=items.ids[row], text_hash=items.hashes[row], text=items.texts[row], state=state, label=None,
                          label_source="unresolved", consensus_label=None, uncertainty=None, votes={}, seed=seed)  # fmt: skip

    def _record(self, row: int, items: InputItems, outcome: Scored, *, audited: bool = False) -> ItemRecord:
        """The stored form of a scored item: done with its consensus label (and the certificate that accepted it), or
        waiting for review; an audited item keeps its consensus label while it waits for the reviewer."""
        return ItemRecord(row=row, item_id=items.ids[row], text_hash=items.hashes[row], text=items.texts[row],
                          state="pending_review" if outcome.hard or audited else "done", label=None if outcome.hard else outcome.consensus_label,
                          label_source="unresolved" if outcome.hard else "consensus", consensus_label=outcome.consensus_label,
                          uncertainty=outcome.uncertainty, votes=outcome.votes, unanimous=outcome.unanimous, audited=audited,
                          certificate=self.guarantee.certificate_for(outcome.uncertainty, outcome.hard))  # fmt: skip

    def _seed_by_reviewer(self, store: RunStore, items: InputItems, records: list[dict], seconds: dict[str, float]) -> Seed:
        """Cold start (paper Table 7): the seed reviewer labels `seed_size` random items first; they stay in the
        run, marked as seed items, and train the specialists (refinement replays them as the seed, never as
        reviewed hard items). On resume the same items are read back. Raises AnnotatorError when fewer than two
        labels came back."""
        rows = store.seed_rows()
        if not rows:  # chosen and stored in one transaction: a run killed at any point finds them all or none
            with_text = [r for r in range(len(items)) if items.texts[r].strip()]
            rng = np.random.default_rng(self.settings.random_seed)
            rows = sorted(int(r) for r in rng.choice(with_text, size=min(self.settings.seed_size, len(with_text)), replace=False))
            store.save_items(self._waiting(r, items, state="pending_review", seed=True) for r in rows)
        self.review.review(store, store.pending_review(rows), items.texts, records, seconds, reviewer=self.seed_reviewer)
        labeled = [r for r in store.by_rows(rows) if r.label is not None]
        if len({r.label for r in labeled}) < 2:
            raise AnnotatorError(f"the seed reviewer labeled {len(labeled)} of {len(rows)} seed items: too few to train on")
        return [r.text for r in labeled], [r.label for r in labeled]

    def _refine_while_due(self, store: RunStore, seed_data: Seed | None, items: InputItems, records: list[dict], seconds: dict[str, float]) -> None:
        """Run refinement rounds while β reviewed items wait; refit the aggregator (and certify it) on the seed and
        every reviewed item; re-score shaky consensus items after a promotion."""
        if self.refiner is None:
            return
        self._rescore(store, items, records, seconds)  # a re-scoring that a killed run left unfinished
        while self.refiner.due(store):
            t0 = time.perf_counter()
            report = self.refiner.run_round(store, self.pool.specialists, Labeled(*seed_data) if seed_data else None)
            seconds["refine"] = seconds.get("refine", 0.0) + time.perf_counter() - t0
            if self.pool.aggregator is not None:
                self.pool.fit_aggregator(store, self._known(store, seed_data), f"{AGGREGATOR_DIR}/round-{report.number}", seconds,
                                         n_seed=len(seed_data[0]) if seed_data else 0)  # fmt: skip
                self._certify(store)
            self._rescore(store, items, records, seconds)

    def _rescore(self, store: RunStore, items: InputItems, records: list[dict], seconds: dict[str, float]) -> None:
        """After a promotion (the round left RESCORE_KEY in the store): consensus items whose voters were less
        sure than `rescore_below` are scored again by the refined pool through the executor, as any chunk is,
        one transaction per chunk; those whose label flips or that are now hard go back to review. The
        review budget was spent when the items were first routed, so under a budget only a flip or no majority
        sends an item back. The store keeps the last row done: a killed run resumes after it."""
        marker = store.get_meta(RESCORE_KEY)
        if marker is None:
            return
        after = int(marker)
        while chunk := store.consensus_below(self.settings.refine.rescore_below, after_row=after, limit=self.settings.chunk_size):
            outcomes = self.pool.score(store, [r.row for r in chunk], [r.text for r in chunk], [r.item_id for r in chunk], seconds)
            changes = [(r.row, o.votes, o.consensus_label, o.uncertainty, o.unanimous)
                       for r, o in zip(chunk, outcomes) if o.hard or o.consensus_label != r.label]  # fmt: skip
            after = chunk[-1].row
            store.reroute(changes, progress=(RESCORE_KEY, str(after)))
            self.router.rerouted(len(changes))
            if changes:
                self.review.review(store, store.pending_review([c[0] for c in changes]), items.texts, records, seconds)
        store.delete_meta(RESCORE_KEY)
