"""Stage 3 of a run: the router. Which scored items go to review: the whole-run review budget
(`autoannotator.budget`), the target accuracy's threshold in force (`run.guarantee`), and the audit's seeded draw
(`autoannotator.audit`). One implementation for every executor (they only score; routing happens here, at the
driver), for `estimate`'s sample and for the reviewer probe's view of the seed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from autoannotator.audit import audit_draw
from autoannotator.budget import budget_route
from autoannotator.run.guarantee import Guarantee
from autoannotator.run.settings import RunSettings
from autoannotator.scoring import Scored
from autoannotator.store import RunStore
from autoannotator.target_accuracy import accepted


class Router:
    """Routes chunks of scored items for one run. What the whole-run budget needs of the run so far (items stored,
    items routed, every U scored) is read from the store once a session and then kept here chunk by chunk
    (`stored`, `rerouted`), so routing a chunk costs the chunk, not the run."""

    def __init__(self, settings: RunSettings, guarantee: Guarantee) -> None:
        self.settings, self.guarantee = settings, guarantee
        self._scored_u: list[np.ndarray] | None = None
        self._done: int | None = None  # items stored so far
        self._routed = 0  # of those, routed to review as hard items (not audits)

    def new_session(self) -> None:
        """Forget what was kept from an earlier session (it is read from the store again)."""
        self._scored_u, self._done = None, None

    def _read(self, store: RunStore) -> None:
        if self._done is None:
            self._done, self._routed = sum(store.count_by_source().values()), store.count_routed()
            self._scored_u = [store.uncertainties()]

    def stored(self, n_items: int, n_routed: int) -> None:
        """A chunk was stored: `n_items` items, `n_routed` of them routed to review (hard, not audited)."""
        if self._done is not None:
            self._done += n_items
            self._routed += n_routed

    def rerouted(self, n_items: int) -> None:
        """Re-scoring sent `n_items` accepted items back to review (they now count as routed)."""
        if self._done is not None:
            self._routed += n_items

    def route_chunk(self, store: RunStore, outcomes: list[Scored], n_items: int, seed_u: np.ndarray) -> list[Scored]:
        """Route one chunk of a run: under the whole-run budget (counts from the store; audited items are not routed
        items), then by the target accuracy's threshold. `seed_u`: (n_seed,) the seed's out-of-fold U (empty
        without the learned rule), the budget's reference before any item is scored."""
        if not self.settings.driver_routes:
            return outcomes
        if self.settings.budget is not None:
            self._read(store)
            reference = np.concatenate([seed_u, *self._scored_u])
            self._scored_u.append(np.array([o.uncertainty for o in outcomes if o.uncertainty is not None], dtype=float))
            outcomes = self._budgeted(outcomes, n_items=n_items, done_before=self._done, routed_before=self._routed, reference=reference)
        return self._targeted(outcomes)

    def route_sample(self, outcomes: list[Scored], seed_u: np.ndarray) -> list[Scored]:
        """Route a sample that stands for the whole run (`estimate`): the budget's share of it, then the threshold."""
        if self.settings.budget is not None:
            outcomes = self._budgeted(outcomes, n_items=len(outcomes), done_before=0, routed_before=0, reference=seed_u)
        return self._targeted(outcomes)

    def uncertain(self, hard: np.ndarray, uncertainty: np.ndarray) -> np.ndarray:
        """(n,) bool: which items a run would review, given the rule's (n,) `hard` and (n,) U (the reviewer probe's
        view of the seed): above the threshold in force under a target accuracy (within the budget if any)."""
        if not self.guarantee.active:
            return hard
        return ~accepted(uncertainty, self.guarantee.threshold) & (hard if self.settings.budget is not None else True)

    def audited(self, rows: list[int], outcomes: list[Scored]) -> list[bool]:
        """--audit: which auto-accepted items of a chunk also go to the reviewer (`audit.audit_draw`, by row)."""
        if not self.settings.audit:
            return [False] * len(rows)
        drawn = audit_draw(rows, self.settings.audit, self.settings.random_seed)
        return [bool(d) and not o.hard for d, o in zip(drawn, outcomes)]

    def _targeted(self, outcomes: list[Scored]) -> list[Scored]:
        """--target-accuracy: items above the threshold in force go to review, those at or below it are accepted;
        with a budget, only the items the budget routed can go (the budget caps the review)."""
        if not self.guarantee.active:
            return outcomes
        ok = accepted(np.array([o.uncertainty for o in outcomes], dtype=float), self.guarantee.threshold)
        capped = self.settings.budget is not None
        return [replace(o, hard=o.consensus_label is None or (not a and (o.hard or not capped))) for o, a in zip(outcomes, ok)]

    def _budgeted(self, outcomes: list[Scored], *, n_items: int, done_before: int, routed_before: int, reference: np.ndarray) -> list[Scored]:
        """`outcomes` with `hard` set by `budget_route` against the `reference` U."""
        hard = budget_route(
            np.array([o.uncertainty for o in outcomes]), np.array([o.consensus_label is None for o in outcomes]), fraction=self.settings.budget,
            n_items=n_items, done_before=done_before, routed_before=routed_before, reference=reference,
        )  # fmt: skip
        return [replace(o, hard=bool(h)) for o, h in zip(outcomes, hard)]
