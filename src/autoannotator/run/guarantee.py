"""Stage 4 of a run: the guarantee of `--target-accuracy A --confidence C`. Certificates are typed records in the
run store (`store.run_state`): one per aggregator the run fits, each bound to the specialist versions it was
fitted on; every accepted item records the certificate whose threshold accepted it; the audit guard's events are
kept beside them. The summary states each certificate used and, when refinement refits made several, the union
bound on the promise (r certificates, each failing with probability at most 1 - C: all hold with probability at
least 1 - r(1 - C), Bonferroni)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from autoannotator.audit import GUARD_METHOD, guard_message, judge
from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.run.settings import RunSettings
from autoannotator.stacking import Aggregator
from autoannotator.store import RunStore
from autoannotator.store.run_state import CertificateRecord, GuardEvent
from autoannotator.target_accuracy import ASSUMPTION, certify


class Guarantee:
    """The target accuracy's certificate and threshold in force for one run (inactive without --target-accuracy).
    `threshold`: accept items with U <= threshold (None: review all); `certificate`: the record in force."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.threshold: float | None = None
        self.certificate: CertificateRecord | None = None
        self.reference = settings.reviewer_kind in ("gold", "human")  # its answers are the truth the guard tests against
        self.reviewer_counts: np.ndarray | None = None  # (n_labels, n_labels) a non-reference reviewer's probe confusion counts
        self.guard_note: str | None = None  # why the guard is off, when it is
        self._audit: tuple[np.ndarray, np.ndarray] | None = None  # (U, agree) of the answered audited items, kept chunk by chunk

    def new_session(self) -> None:
        """Forget the audit answers kept from an earlier session (read from the store again)."""
        self._audit = None

    @property
    def active(self) -> bool:
        return self.settings.target_accuracy is not None

    def certify(self, store: RunStore, aggregator: Aggregator | None, n_seed: int, versions: dict[str, int], relative: str) -> None:
        """Certify the threshold on the active aggregator's out-of-fold (U, correct) of the first `n_seed` items (the
        seed's: a refit is also fitted on reviewed items, chosen for being hard, not drawn like the input) and put it
        in force; a resumed run reads the certificate and threshold in force (a guard may have lowered it); after a
        refit the new certificate applies, never above a guard-lowered threshold. `relative`: the aggregator's folder
        in the run, `versions`: the specialist versions it was fitted on. Raises AnnotatorError for an aggregator
        saved before --target-accuracy existed."""
        if not self.active or aggregator is None:
            return
        if aggregator.seed_correct is None:
            raise AnnotatorError(f"the aggregator in {aggregator.folder} predates --target-accuracy: use another --run-dir")
        current, threshold = store.state.target_state()
        if current is None or current.aggregator != relative:
            seed = slice(0, n_seed)
            figures = certify(aggregator.seed_uncertainty[seed], aggregator.seed_correct[seed], target=self.settings.target_accuracy,
                              confidence=self.settings.confidence).to_dict()  # fmt: skip
            events = store.state.guard_events()
            new_threshold = figures["threshold"]
            if events:
                lowered = events[-1].threshold_after
                new_threshold = None if new_threshold is None or lowered is None else min(new_threshold, lowered)
            with store.transaction():
                current = store.state.add_certificate(relative, versions, figures)
                store.state.set_target_state(current.id, new_threshold)
            threshold = new_threshold
        self.certificate, self.threshold = current, threshold

    def certificate_for(self, uncertainty: float | None, hard: bool) -> int | None:
        """The id of the certificate that accepts an item of U `uncertainty` (None: not accepted by a certificate,
        e.g. a review budget accepted it above the threshold, or no target accuracy)."""
        if not self.active or hard or self.certificate is None or self.threshold is None or uncertainty is None:
            return None
        return self.certificate.id if uncertainty <= self.threshold + 1e-12 else None

    def guard(self, store: RunStore, chunk: list[int], n_done: int) -> None:
        """With --audit: when the audit shows the accepted labels below the target (`audit.judge`: an anytime-valid
        test at error 1 - C over every look, the agreement corrected for an imperfect reviewer's probe confusion), say
        so and lower the threshold (review more) for the rest of the run; the event is kept in the store. A
        non-reference reviewer (an LLM) without a probe cannot be corrected for: the guard is off and says why. The
        audited answers are read from the store once a session, then only the chunk's (`chunk`: its rows)."""
        if not self.active or not self.settings.audit or self.threshold is None:
            return
        if not self.reference and self.reviewer_counts is None:
            self.guard_note = ("the reviewer is not a reference and has no probe to measure it by: agreement with it is not accuracy, "
                               "so the audit guard is off (give --reviewer-probe N with a seed)")  # fmt: skip
            return
        if self._audit is None:
            self._audit = store.audit_answers()
        else:
            new_u, new_agree = store.audit_answers(chunk)
            self._audit = (np.concatenate([self._audit[0], new_u]), np.concatenate([self._audit[1], new_agree]))
        u, agree = self._audit
        verdict = judge(u, agree, threshold=self.threshold, target=self.settings.target_accuracy, alpha=1.0 - self.settings.confidence,
                        reviewer_counts=None if self.reference else self.reviewer_counts)  # fmt: skip
        self.guard_note = verdict.reason
        if not verdict.breached:
            return
        event = GuardEvent(after_items=n_done, n_audited=verdict.n_audited, audited_accuracy=round(verdict.agreement, 4),
                           threshold_before=self.threshold, threshold_after=verdict.threshold, statistic=round(float(verdict.log_e_value), 4))  # fmt: skip
        with store.transaction():
            store.state.add_guard_event(event)
            store.state.set_target_state(self.certificate.id, verdict.threshold)
        self.threshold = verdict.threshold
        message = event.to_dict() | {"agreement_target": verdict.agreement_target, "alpha": verdict.alpha}
        warnings.warn(guard_message(message, self.settings.target_accuracy), InputWarning, stacklevel=2)

    def uncertified(self, n_seed: int) -> str:
        """Why --target-accuracy accepts nothing by itself: the seed certifies no threshold."""
        return (f"no threshold is certified: {n_seed} seed items cannot show {self.settings.target_accuracy:.1%} accuracy with probability "
                f"{self.settings.confidence:.0%} at any threshold (a lower --target-accuracy or --confidence, or a larger seed would)")

    def summary(self, store: RunStore, n_seed: int) -> dict[str, Any]:
        """What the summary says about --target-accuracy: the certificates used (each with the items it accepted),
        the threshold in force, the guard's events, items accepted without a certificate (a review budget accepted
        them above the threshold), and the guarantee with its confidence (the union bound over the certificates
        used) and assumption."""
        if not self.active:
            return {}
        target, confidence = self.settings.target_accuracy, self.settings.confidence
        current, threshold = store.state.target_state()
        records = {c.id: c for c in store.state.certificates()}
        used = store.state.certificates_used()
        events = [e.to_dict() for e in store.state.guard_events()]
        above = _accepted_without_certificate(store)
        certified = current.threshold if current is not None else None
        n_certificates = max(len(used), 1)
        joint = max(0.0, 1.0 - n_certificates * (1.0 - confidence))
        holds = not events and above == 0 and certified is not None
        assumption = f"assuming {ASSUMPTION}"
        guarantee = f"the auto-accepted labels are at least {target:.1%} accurate with probability {confidence:.0%}, {assumption}"
        if n_certificates > 1:
            guarantee = (f"the auto-accepted labels rest on {n_certificates} certificates (refinement refits), each at least {target:.1%} accurate "
                         f"with probability {confidence:.0%}: all hold with probability at least {joint:.0%} (union bound), {assumption}")  # fmt: skip
        if certified is None and not used:
            accepted_anyway = f"; the review budget accepted {above} items" if above else ": every item went to review"
            guarantee = f"none, {self.uncertified(n_seed)}{accepted_anyway}"
        elif above:
            guarantee = f"not kept: the review budget accepted {above} items above the certified threshold"
        elif events:
            guarantee = "broken by the audit: the audited accuracy fell below the target; the run lowered its threshold"
        return {"target": target, "confidence": confidence, "certified_threshold": certified, "threshold": threshold,
                "certificate": current.figures() if current is not None else {},
                "certificates": [records[i].figures() | {"n_accepted": n} for i, n in sorted(used.items()) if i in records],
                "joint_confidence": round(joint, 6), "guard": events, "guard_method": GUARD_METHOD, "guard_note": self.guard_note, "accepted_above_certified": above, "holds": holds,
                "guarantee": guarantee, "assumption": ASSUMPTION}  # fmt: skip


def _accepted_without_certificate(store: RunStore) -> int:
    """Items accepted by consensus (audited ones included) that no certificate accepted."""
    row = store.conn.execute(
        "SELECT COUNT(*) FROM items WHERE consensus_label IS NOT NULL AND uncertainty IS NOT NULL AND certificate IS NULL "
        "AND (label_source = 'consensus' OR audited = 1)"
    ).fetchone()
    return int(row[0])

