"""`--audit F`: a seeded random share F of the auto-accepted items also goes to the reviewer, so the run measures
its own accuracy instead of trusting the seed.

Each auto-accepted item is audited independently with probability F, decided by a hash of (random seed, row):
the same items on every run and resume, whatever the chunking, so a killed run never audits an item twice.
The audited items are a uniform random sample of the accepted ones: their agreement with the reviewer estimates
the accuracy of the auto-accepted labels, with a 95% Wilson score interval (`estimate.proportion_interval`).
The whole output's accuracy counts a reviewed item as right where its final label is the reviewer's answer (the
reviewer is the reference; under --review-mode combine the pool can overrule the answer, label_source
llm+consensus, and such an item counts as wrong), and the consensus labels at that estimate. With an LLM
reviewer this is agreement with the LLM, not accuracy.

With `--target-accuracy` the audit guards the promise (`guard`): when the audited accuracy of the items accepted
under the current threshold falls below the target, the threshold is lowered to the loosest one at which the
audited items still reach the target, for the rest of the run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd

from autoannotator.estimate import proportion_interval

DEFAULT_SHARE = 0.05  # the audit that --target-accuracy turns on: ~100 audited items per 2,500 accepted, +-6 points
GUARD_MIN_AUDITED = 30  # audited answers under the current threshold before the guard judges it
AUDIT_COLUMNS = ["label", "label_source", "consensus_label", "reviewed_label"]  # what `audit_figures` reads besides `audited`


def audit_draw(rows: Iterable[int], share: float, seed: int) -> np.ndarray:
    """(n,) bool: which of `rows` are audited, each with probability `share`, from a hash of (seed, row)."""
    draws = [int.from_bytes(hashlib.blake2b(f"audit:{seed}:{row}".encode(), digest_size=8).digest(), "big") / 2**64 for row in rows]
    return np.array(draws, dtype=float) < share


def _interval(value: float, low: float, high: float) -> dict[str, float]:
    return {"estimate": round(value, 4), "low": round(low, 4), "high": round(high, 4)}


def audit_figures(frame: pd.DataFrame, share: float | None = None) -> dict | None:
    """The audit's estimates from an output table (columns label, label_source, consensus_label, reviewed_label,
    audited); None when no item was audited. Keys: n_audited (sent), n_answered, n_agree, accepted_accuracy and
    output_accuracy ({estimate, low, high}, 95% Wilson; None while no audited item is answered; the output's over its labeled items: a reviewed item is right
    where its label equals the reviewer's answer, a consensus one at the audited rate), reference (the
    reviewer sources that answered) and note (what the figure measures)."""
    if "audited" not in frame.columns:
        return None
    audited = frame["audited"].astype(str).str.lower().isin(("true", "1", "1.0"))
    if not audited.any():
        return None
    answered = audited & frame["reviewed_label"].notna() & (frame["reviewed_label"].astype(str) != "")
    agree = (frame["consensus_label"].astype(str) == frame["reviewed_label"].astype(str))[answered]
    accepted_now = (frame["label_source"] == "consensus") & ~audited
    population = int(accepted_now.sum() + audited.sum())
    k, m = int(agree.sum()), int(answered.sum())
    accepted = proportion_interval(k, m, population)
    labeled = frame["label"].notna() & (frame["label"].astype(str) != "")
    by_consensus = labeled & (frame["label_source"] == "consensus")
    as_reviewer = int((labeled & ~by_consensus & (frame["label"].astype(str) == frame["reviewed_label"].astype(str))).sum())
    n_labeled = max(int(labeled.sum()), 1)
    output = [(as_reviewer + int(by_consensus.sum()) * p) / n_labeled for p in (accepted.value, accepted.low, accepted.high)]
    reference = sorted(set(frame.loc[answered, "label_source"].astype(str)) - {"consensus", "unresolved"})
    note = "accuracy against the reviewer's labels"
    if any("llm" in source for source in reference):  # llm, or llm+consensus (--review-mode combine)
        note = "agreement with the LLM reviewer, not accuracy against the truth"
    measured = m > 0  # no audited answer (a --max-llm-calls cap spent on the hard items): nothing is estimated
    figures = {"n_audited": int(audited.sum()), "n_answered": m, "n_agree": k,
               "accepted_accuracy": _interval(accepted.value, accepted.low, accepted.high) if measured else None,
               "output_accuracy": _interval(*output) if measured else None, "interval": "95% Wilson score", "reference": reference, "note": note}  # fmt: skip
    return ({"share": share} if share is not None else {}) | figures


def guard(uncertainty: np.ndarray, agree: np.ndarray, *, threshold: float, target: float) -> tuple[bool, float | None]:
    """Judge the threshold by the audit: (breached, new threshold).

    `uncertainty` (m,) U and `agree` (m,) bool of the answered audited items. Only items the current threshold
    accepts (U <= threshold) count. Breached when at least GUARD_MIN_AUDITED of them agree less than `target`
    of the time; the new threshold is then the largest audited U below which the audited items still reach the
    target (None: none does, review every item).
    """
    inside = uncertainty <= threshold + 1e-12
    u, ok = uncertainty[inside], agree[inside].astype(float)
    if len(u) < GUARD_MIN_AUDITED or ok.mean() >= target:
        return False, threshold
    order = np.argsort(u, kind="stable")
    u, ok = u[order], ok[order]
    running = np.cumsum(ok) / np.arange(1, len(u) + 1)
    last_of_tie = np.append(u[1:] != u[:-1], True)  # a threshold accepts every item of equal U
    meets = np.flatnonzero(last_of_tie & (running >= target) & (u < threshold))
    return True, (float(u[meets[-1]]) if len(meets) else None)


def guard_message(event: dict, target: float) -> str:
    """One line saying the audit broke the target accuracy's promise and what the run does about it."""
    after = event["threshold_after"]
    raised = "every item goes to review from now on" if after is None else f"the review threshold is raised: U > {after:.4f} goes to review from now on"
    return (f"the audit measured {event['audited_accuracy']:.1%} on {event['n_audited']} audited items, below the target accuracy "
            f"{target:.1%}: the seed is not drawn like the input, the guarantee no longer holds; {raised}")
