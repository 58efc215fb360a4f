"""`--target-accuracy A [--confidence C]`: review the fewest items such that the auto-accepted labels are at least
A accurate with probability at least C, from the learned consensus's out-of-fold posteriors on the seed.

Method: Learn then Test (Angelopoulos, Bates, Candès, Jordan, Lei 2021, "Learn then Test: Calibrating Predictive
Algorithms to Achieve Risk Control"). An item is auto-accepted when its U = 1 - max posterior is at most a
threshold λ. The risk controlled is the error rate among accepted items, a conditional risk: for each candidate
λ the null hypothesis "accuracy of the items accepted at λ < A" is tested on the seed's out-of-fold (U, correct)
pairs with a binomial-tail p-value (the Bentkus bound for a binary loss, whose effective sample size is the number
of seed items accepted at λ), and fixed-sequence testing runs through the λ in an order fixed from U alone
(`testing_order`), stopping at the first λ it cannot reject, so the family-wise error is at most 1 - C. The
loosest certified λ reviews the fewest items. MAPIE's `BinaryClassificationController` implements exactly this (risk "precision" of the binary
decision "accept", with y = "the consensus label is correct", `fwer_method="fixed_sequence"`), so it is used as it
is rather than re-written; crepes (conformal predictors and regressors) controls coverage of prediction sets,
not the accuracy of a selected subset, so it does not fit here.

The guarantee's assumption: the seed is drawn like the input (exchangeable with it). The seed's posteriors are
out-of-fold (every specialist trained on the seed is cross-fitted, and so is the aggregator), the run's are from
models fitted on the whole seed: slightly better models than the ones certified, so the certificate errs on the
safe side as long as the assumption holds. A shifted seed breaks it; the audit (`autoannotator.audit`) measures
the run itself and guards the promise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

METHOD = "learn-then-test, fixed-sequence testing, binomial-tail p-values (MAPIE BinaryClassificationController, precision)"
ASSUMPTION = "the seed is drawn like the input (exchangeable with it)"
DEFAULT_CONFIDENCE = 0.9  # --confidence when --target-accuracy is given without it
GRID_STEPS = 100  # candidate thresholds: more steps end the fixed sequence earlier on noise
START_SHARE = 0.05  # the strictest candidate accepts at least this share of the seed
U_DECIMALS = 6  # the run stores U rounded so (`scoring.score`): thresholds are compared on the same grid


@dataclass(frozen=True)
class Certificate:
    """The certified threshold on U and what it does on the seed.

    `threshold`: accept items with U <= threshold (None: no threshold is certified, review every item);
    `seed_accepted_share` / `seed_accuracy`: share of seed items accepted and their accuracy at the threshold;
    `n_calibration`: seed items certified on.
    """

    target: float
    confidence: float
    threshold: float | None
    n_calibration: int
    seed_accepted_share: float
    seed_accuracy: float | None

    def to_dict(self) -> dict:
        return asdict(self) | {"method": METHOD, "assumption": ASSUMPTION}


def accepted(uncertainty: np.ndarray, threshold: float | None) -> np.ndarray:
    """(n,) bool: items the threshold auto-accepts (U <= threshold, on the stored U's decimals)."""
    if threshold is None:
        return np.zeros(len(uncertainty), dtype=bool)
    return np.round(np.asarray(uncertainty, dtype=float), U_DECIMALS) <= threshold + 1e-12


def candidate_thresholds(u: np.ndarray, *, target: float, confidence: float, steps: int = GRID_STEPS) -> np.ndarray:
    """Ascending thresholds on U for fixed-sequence testing, chosen from the seed's U alone (never its labels):
    the U below which the `steps` evenly spaced shares of the seed fall, from the share that could pass at all.
    A sequence starting at a handful of items would stop at once (no test on 1 item rejects), so it starts
    where the accepted items are at least log(1 - C) / log(A) (the fewest that certify with no error) and at
    least `START_SHARE` of the seed. Empty when the seed is smaller than that."""
    n = len(u)
    fewest = max(math.ceil(math.log(1.0 - confidence) / math.log(target)), math.ceil(START_SHARE * n))
    if n < fewest:
        return np.zeros(0)
    counts = np.unique(np.ceil(np.linspace(fewest / n, 1.0, steps) * n).astype(int))
    return np.unique(np.sort(u)[counts - 1])


def testing_order(u: np.ndarray, thresholds: np.ndarray, *, target: float) -> np.ndarray:
    """`thresholds` in the order fixed-sequence testing tries them: most promising first, judged from U alone.
    If the posteriors are calibrated, an item is wrong with probability U, so the accepted items at a threshold
    should hold sum(U) errors; the thresholds are sorted by the binomial p-value that count would give (looser
    first among equals). The order uses no label, so the test keeps its error control (Angelopoulos et al.
    2021, section 4: any order fixed before looking at the losses is valid); it only spends the sequence
    where it can reject, instead of on the strictest thresholds whose few items cannot."""
    from scipy.stats import binom

    accepted_n = np.array([(u <= t + 1e-12).sum() for t in thresholds])
    errors = np.array([u[u <= t + 1e-12].sum() for t in thresholds])
    predicted = binom.cdf(np.floor(errors), accepted_n, 1.0 - target)
    return thresholds[np.lexsort((-thresholds, predicted))]


def certify(uncertainty: np.ndarray, correct: np.ndarray, *, target: float, confidence: float) -> Certificate:
    """The loosest threshold on U whose accepted items are at least `target` accurate with probability `confidence`.

    `uncertainty` (n,) out-of-fold U of the seed items; `correct` (n,) whether the out-of-fold label was right.
    Candidate thresholds (`candidate_thresholds`) are tested in `testing_order` (fixed-sequence testing); the
    loosest one the sequence certifies before its first failure is returned.
    Raises ValueError for a target or confidence outside (0, 1) or arrays of different lengths.
    """
    from mapie.risk_control import BinaryClassificationController

    if not 0.0 < target < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(f"target accuracy and confidence must be in (0, 1), got {target} and {confidence}")
    u = np.round(np.asarray(uncertainty, dtype=float), U_DECIMALS)
    y = np.asarray(correct, dtype=int)
    if len(u) != len(y):
        raise ValueError(f"{len(u)} uncertainties for {len(y)} correctness flags")
    if len(u) == 0:
        return Certificate(target, confidence, None, 0, 0.0, None)
    thresholds = testing_order(u, candidate_thresholds(u, target=target, confidence=confidence), target=target)
    if len(thresholds) == 0:
        return Certificate(target, confidence, None, len(u), 0.0, None)
    confidences = 1.0 - thresholds  # MAPIE accepts ("predicts positive") where the score >= its parameter

    def predict_proba(x: np.ndarray) -> np.ndarray:
        score = 1.0 - np.asarray(x, dtype=float).reshape(-1)
        return np.column_stack([1.0 - score, score])

    controller = BinaryClassificationController(
        predict_function=predict_proba, risk="precision", target_level=float(target), confidence_level=float(confidence),
        list_predict_params=confidences, fwer_method="fixed_sequence",
    )  # fmt: skip
    with warnings.catch_warnings():  # U of 0 and 1 only (e.g. unanimous pools) draws a "not probabilities" warning
        warnings.simplefilter("ignore")
        controller.calibrate(u.reshape(-1, 1), y)
    if len(controller.valid_predict_params) == 0:
        return Certificate(target, confidence, None, len(u), 0.0, None)
    threshold = float(np.round(1.0 - np.min(controller.valid_predict_params), U_DECIMALS))  # the loosest certified
    mask = accepted(u, threshold)
    return Certificate(target, confidence, threshold, len(u), float(mask.mean()), float(y[mask].mean()))
