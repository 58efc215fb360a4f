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

With `--target-accuracy A --confidence C` the audit guards the promise (`judge`): a one-sided test of
H0 "the items accepted under the current threshold are at least A accurate", run again after every chunk on the
growing audit, with a false alarm rate of at most alpha = 1 - C over all those looks together (anytime-valid).

- The test: Robbins' mixture likelihood ratio (H. Robbins 1970, "Statistical methods related to the law of the
  iterated logarithm", Ann. Math. Statist. 41(5); the conjugate Beta-binomial mixture of Howard, Ramdas,
  McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist.
  49(2)). After k agreements in n audited answers, M_n = E_q[q^k (1-q)^(n-k)] / (A^k (1-A)^(n-k)) with q drawn
  from a Beta(1, 1) prior truncated to (0, A) (`log_e_value`). For any true accuracy p >= A each factor's
  expectation is p q / A + (1-p)(1-q) / (1-A) <= 1, so M_n is a nonnegative supermartingale with M_0 = 1, and
  Ville's inequality (J. Ville 1939, "Étude critique de la notion de collectif") bounds P(M_n >= 1/alpha for some
  n) by alpha: the guard fires when M_n >= 1/alpha, and may look after every item, chunk or resume. It holds as
  long as the audited items are drawn independently of their outcome (`audit_draw`: a hash of the row) and
  reach the test in input order. In simulation (tests/test_audit_guard.py: a look every 25 audited answers up to
  600, alpha 0.1, a reference reviewer) accuracy A + 0.05 fired in 0 of 2,000 runs at A = 0.8 (the rule it
  replaced, "the mean of >= 30 audited answers is below A": 18.4%), accuracy A in 1%, A - 0.10 in 98-100%.
- An imperfect reviewer (issue 20, defect 3): agreement with it is not accuracy. Under the one-coin model
  (Dawid & Skene 1979) with reviewer accuracy r and K labels, the consensus label agrees with the answer with
  probability a r + (1 - a)(1 - r) / (K - 1) when the consensus is right with probability a (`agreement_rate`).
  That is increasing in a when r > 1/K and in r when A > 1/K, so "a >= A" implies "agreement >= the rate at
  (A, r_low)": the test runs on the agreements against that boundary, with r_low the one-sided Clopper-Pearson
  lower bound of the reviewer's accuracy on the probe (`reviewer_accuracy_bounds`). Half of alpha goes to that
  bound and half to the test (a union bound: false alarms <= alpha). When r_low <= 1/K the agreement says
  nothing about accuracy and the guard is off, with the reason in the verdict. Assumed: the reviewer's errors
  fall evenly on the wrong labels (one coin), and it is at least as accurate on accepted items as on the probe.
  In simulation a 70% reviewer (100-item probe), accepted labels 70% accurate and A = 0.6 fired in 0.1% of runs
  (read as accuracy: 68% with this test, 100% with the old rule); the price is power (labels 40% accurate: 70%).
- When it fires, the new threshold (`lowered_threshold`) is the loosest audited U below the current threshold
  at which the audited items' one-sided Clopper-Pearson lower bound (at the test's level) still reaches the
  agreement the target implies (at the reviewer's upper bound r_high: the cautious end for this positive claim);
  None when none does (review every item). A per-threshold bound, not the raw mean (which picks a threshold
  where the audit was lucky); the guard keeps watching the new threshold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.special import betainc, betaincinv, betaln

from autoannotator.estimate import proportion_interval

DEFAULT_SHARE = 0.05  # the audit that --target-accuracy turns on: ~100 audited items per 2,500 accepted, +-6 points
DEFAULT_ALPHA = 0.1  # the guard's false alarm rate: 1 - target_accuracy.DEFAULT_CONFIDENCE
MIXTURE_PRIOR = (1.0, 1.0)  # Beta(a, b) over the alternative accuracies q < A in `log_e_value` (uniform on (0, A))
GUARD_METHOD = "anytime-valid Beta-binomial mixture likelihood ratio (Robbins 1970, Ville's inequality), one-coin reviewer correction"
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
    if 0 < m < int(audited.sum()):  # a --max-llm-calls or --max-cost cap (or failed answers) left audited items unanswered
        note += (f"; only {m} of the {int(audited.sum())} audited items were answered (the rest unresolved), so the estimate is over "
                 "those, which are not a uniform sample of the accepted items")  # fmt: skip
    measured = m > 0  # no audited answer (a --max-llm-calls cap spent on the hard items): nothing is estimated
    figures = {"n_audited": int(audited.sum()), "n_answered": m, "n_agree": k,
               "accepted_accuracy": _interval(accepted.value, accepted.low, accepted.high) if measured else None,
               "output_accuracy": _interval(*output) if measured else None, "interval": "95% Wilson score", "reference": reference, "note": note}  # fmt: skip
    return ({"share": share} if share is not None else {}) | figures


def log_e_value(agree: np.ndarray | float, n: np.ndarray | float, *, target: float,
                prior: tuple[float, float] = MIXTURE_PRIOR) -> np.ndarray:  # fmt: skip
    """log M_n, the mixture likelihood ratio against H0 "accuracy >= target" after `agree` successes in `n` trials
    (scalars or arrays of one shape; arrays give one value per (agree, n) pair, e.g. per run and look):
    log( B(k + a, n - k + b) I_target(k + a, n - k + b) / (B(a, b) I_target(a, b)) ) - k log(target) - (n - k) log(1 - target),
    the Beta(a, b) = `prior` mixture truncated to (0, target) (Robbins 1970; Howard et al. 2021), I the regularised
    incomplete beta function. 0 at n = 0; -inf where the data lie so far above the target that the mixture
    underflows (no evidence against H0). Fire at level alpha when it is >= log(1 / alpha) (Ville's inequality).
    Raises ValueError for a target outside (0, 1), k outside [0, n] or a prior parameter <= 0."""
    k, m = np.asarray(agree, dtype=float), np.asarray(n, dtype=float)
    a, b = prior
    if not 0.0 < target < 1.0 or a <= 0 or b <= 0:
        raise ValueError(f"need 0 < target < 1 and a positive Beta prior, got target={target}, prior={prior}")
    if (k < 0).any() or (k > m).any():
        raise ValueError("agreements must lie in [0, n]")
    with np.errstate(divide="ignore"):
        mixture = betaln(k + a, m - k + b) + np.log(betainc(k + a, m - k + b, target)) - betaln(a, b) - np.log(betainc(a, b, target))
    return mixture - k * np.log(target) - (m - k) * np.log1p(-target)


def reviewer_accuracy_bounds(counts: np.ndarray, *, alpha: float) -> tuple[float, float]:
    """(low, high): one-sided (1 - alpha) Clopper-Pearson bounds (Clopper & Pearson 1934, "The use of confidence or
    fiducial limits illustrated in the case of the binomial", Biometrika 26(4)) on the accuracy of a reviewer whose
    (n_labels, n_labels) confusion counts (rows: true label, columns: answer; e.g. `ProbeAnswers.figures()
    ["confusion"]`) hold trace(counts) right answers of counts.sum(); (0, 1) when it is empty.
    Raises ValueError for a non-square or negative matrix or alpha outside (0, 1)."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or (counts < 0).any() or not 0.0 < alpha < 1.0:
        raise ValueError(f"need a square non-negative confusion count matrix and 0 < alpha < 1, got shape {counts.shape}, alpha={alpha}")
    k, n = float(np.trace(counts)), float(counts.sum())
    low = 0.0 if k <= 0 else float(betaincinv(k, n - k + 1, alpha))  # the alpha quantile of Beta(k, n - k + 1)
    high = 1.0 if k >= n else float(betaincinv(k + 1, n - k, 1.0 - alpha))
    return low, high


def agreement_rate(accuracy: float, reviewer_accuracy: float, n_labels: int) -> float:
    """P(the consensus label equals the reviewer's answer) when the consensus is right with probability `accuracy`
    and the reviewer with `reviewer_accuracy`, its errors spread evenly over the other n_labels - 1 labels and
    independent of the consensus given the truth (the one-coin Dawid-Skene model):
    a r + (1 - a)(1 - r) / (K - 1). A reference reviewer (r = 1) gives the accuracy itself.
    Raises ValueError for n_labels < 2."""
    if n_labels < 2:
        raise ValueError(f"need at least 2 labels, got {n_labels}")
    return accuracy * reviewer_accuracy + (1.0 - accuracy) * (1.0 - reviewer_accuracy) / (n_labels - 1)


@dataclass(frozen=True)
class GuardVerdict:
    """What `judge` concluded after one look at the audit.

    `breached`: H0 "the accepted items are at least `target` accurate" is rejected; `threshold`: the threshold in
    force from now on (the current one unless breached; None: review every item); `n_audited` / `n_agree`: answered
    audited items under the current threshold and how many agree with the consensus label; `agreement_target`:
    the agreement rate the target implies with this reviewer (the test's boundary; the target itself for a
    reference reviewer); `log_e_value`: log M_n (breached when >= log(1 / alpha_test)); `alpha`: the error allowed
    in all, `alpha_test`: the part spent on the test; `reviewer_accuracy`: (low, high) bounds used, None for a
    reference reviewer; `reason`: why the guard is off (None while it is on)."""

    breached: bool
    threshold: float | None
    n_audited: int
    n_agree: int
    target: float
    agreement_target: float | None
    log_e_value: float
    alpha: float
    alpha_test: float
    reviewer_accuracy: tuple[float, float] | None = None
    reason: str | None = None

    @property
    def active(self) -> bool:
        """Whether the guard judged at all (False: off for this reviewer, see `reason`)."""
        return self.reason is None

    @property
    def agreement(self) -> float | None:
        """The audited agreement rate under the current threshold (None: no audited answer)."""
        return self.n_agree / self.n_audited if self.n_audited else None

    def to_dict(self) -> dict:
        return asdict(self) | {"agreement": self.agreement, "method": GUARD_METHOD}


def lowered_threshold(uncertainty: np.ndarray, agree: np.ndarray, *, threshold: float, agreement_target: float,
                      alpha: float) -> float | None:  # fmt: skip
    """The loosest audited U strictly below `threshold` whose audited items (U <= it) have a one-sided (1 - alpha)
    Clopper-Pearson lower bound on their agreement >= `agreement_target`; None when none has (review every item).
    `uncertainty` (m,) U and `agree` (m,) bool of the answered audited items. A threshold accepts every item of
    equal U, so only the last of a tie is a candidate."""
    u, ok = np.asarray(uncertainty, dtype=float), np.asarray(agree, dtype=bool)
    inside = u <= threshold + 1e-12
    u, ok = u[inside], ok[inside].astype(float)
    order = np.argsort(u, kind="stable")
    u, ok = u[order], ok[order]
    k, n = np.cumsum(ok), np.arange(1, len(u) + 1)
    low = np.where(k > 0, betaincinv(np.maximum(k, 1e-12), n - k + 1, alpha), 0.0)  # Clopper-Pearson, one-sided
    last_of_tie = np.append(u[1:] != u[:-1], True)
    meets = np.flatnonzero(last_of_tie & (low >= agreement_target) & (u < threshold - 1e-12))
    return float(u[meets[-1]]) if len(meets) else None


def judge(
    uncertainty: np.ndarray,
    agree: np.ndarray,
    *,
    threshold: float,
    target: float,
    alpha: float = DEFAULT_ALPHA,
    reviewer_counts: np.ndarray | None = None,
) -> GuardVerdict:
    """Judge the threshold by the audit: an anytime-valid one-sided test of "the items accepted under `threshold`
    are at least `target` accurate" (see the module's notes), safe to call after every chunk on the growing audit.

    `uncertainty` (m,) U and `agree` (m,) bool (consensus label == reviewer's answer) of every answered audited
    item so far (the statistic depends on their counts only); only those the current threshold accepts (U <= threshold) count.
    `alpha`: the false alarm rate allowed over all looks (1 - the --confidence of --target-accuracy).
    `reviewer_counts`: (n_labels, n_labels) the reviewer's confusion counts on items with known labels (the probe:
    `ProbeAnswers.figures()["confusion"]`), or None for a reference reviewer (gold, human) whose answers are the
    truth. With counts, alpha / 2 goes to the reviewer's Clopper-Pearson bounds and alpha / 2 to the test, which
    runs on agreement against `agreement_rate(target, r_low, K)`; the guard is off (verdict with a `reason`,
    never breached) when r_low <= 1 / K. Breached: the new threshold is `lowered_threshold` at the agreement the
    target implies at r_high. Raises ValueError for a target or alpha outside (0, 1), arrays of different
    shapes, or bad counts (as `reviewer_accuracy_bounds`)."""
    u, ok = np.asarray(uncertainty, dtype=float), np.asarray(agree, dtype=bool)
    if u.ndim != 1 or u.shape != ok.shape:
        raise ValueError(f"uncertainty and agree must be (m,) arrays of one length, got {u.shape} and {ok.shape}")
    if not 0.0 < target < 1.0 or not 0.0 < alpha < 1.0:
        raise ValueError(f"target and alpha must be in (0, 1), got {target} and {alpha}")
    inside = u <= threshold + 1e-12
    n, k = int(inside.sum()), int(ok[inside].sum())
    if reviewer_counts is None:
        alpha_test, bounds, test_target, new_target = alpha, None, target, target
    else:
        counts = np.asarray(reviewer_counts, dtype=float)
        alpha_test = alpha / 2.0
        bounds = reviewer_accuracy_bounds(counts, alpha=alpha / 2.0)
        n_labels = counts.shape[0]
        if n_labels < 2 or bounds[0] <= 1.0 / n_labels:
            reason = (f"the reviewer is not shown better than chance ({1.0 / max(n_labels, 1):.1%}): its accuracy is at least "
                      f"{bounds[0]:.1%} at {1.0 - alpha / 2.0:.0%} confidence on {int(counts.sum())} known items, so agreement "
                      f"with it says nothing about accuracy; the audit guard is off")  # fmt: skip
            return GuardVerdict(False, threshold, n, k, target, None, 0.0, alpha, alpha_test, bounds, reason)
        rates = [agreement_rate(target, r, n_labels) for r in bounds]  # linear in r: the extremes are at the ends
        test_target, new_target = min(rates), max(rates)
    log_e = float(log_e_value(k, n, target=test_target))
    breached = log_e >= np.log(1.0 / alpha_test)
    after = lowered_threshold(u, ok, threshold=threshold, agreement_target=new_target, alpha=alpha_test) if breached else threshold
    return GuardVerdict(bool(breached), after, n, k, target, test_target, log_e, alpha, alpha_test, bounds)


def guard_message(event: dict, target: float) -> str:
    """One line saying the audit broke the target accuracy's promise and what the run does about it. `event`: keys
    threshold_after, audited_accuracy (the agreement rate), n_audited, and optionally agreement_target and alpha
    (from `GuardVerdict`: the agreement the target implies with an imperfect reviewer, the test's error level)."""
    after = event["threshold_after"]
    raised = "every item goes to review from now on" if after is None else f"the review threshold is raised: U > {after:.4f} goes to review from now on"
    implied = event.get("agreement_target")
    if implied is not None and abs(implied - target) > 1e-9:
        measured = (f"the audit measured {event['audited_accuracy']:.1%} agreement with the reviewer on {event['n_audited']} audited items, "
                    f"below the {implied:.1%} that the target accuracy {target:.1%} implies with the reviewer's measured accuracy")  # fmt: skip
    else:
        measured = f"the audit measured {event['audited_accuracy']:.1%} on {event['n_audited']} audited items, below the target accuracy {target:.1%}"
    test = f" (anytime-valid test, false alarm rate at most {event['alpha']:.0%})" if event.get("alpha") is not None else ""
    return f"{measured}{test}: the seed is not drawn like the input, the guarantee no longer holds; {raised}"
