"""A reviewer's measured skill and the combination of its answers with the pool's posterior, as pure functions.

Labels are indices 0..n_labels-1 in the task's order; an answer of -1 means the reviewer gave no label.

- `confusion_from_answers`: the reviewer's confusion matrix P(answer | true label), estimated from items whose
  true label is known (the probe's seed items, audited items), each row smoothed by a Dirichlet prior
  (Laplace's rule with the default prior of 1 per cell; a matrix prior carries an earlier estimate forward).
- `combine`: the Dawid & Skene (1979) E-step for one item with one answer and a per-item prior, i.e.
  posterior(t) ∝ pool_posterior(t) * confusion[t, answer] (Dawid & Skene, "Maximum likelihood estimation of
  observer error-rates using the EM algorithm", Applied Statistics 28(1), eq. 2.5, with the class prior p_t
  replaced by the pool's posterior for the item).
- `accuracy_interval`: a Wilson score interval for an accuracy (Wilson 1927), by `scipy.stats.binomtest`.
- `reviewer_confusion`: the matrix `combine` is given, for the reviewer (P(answer | true label)) and, with the
  same estimator, for the pool (P(consensus | true label): `probe.ProbeAnswers.pool_posterior`). Both are
  posterior means with matched priors on the same probe items with the same weights, so neither side is read
  more conservatively than the other: the accuracy is the mean of its Beta(1, 1) posterior
  (`posterior_accuracy`, Laplace's rule of succession). With one-coin skills for both, the product of the two
  posterior means is exactly the posterior predictive P(truth | answer, consensus, probe) integrated over both
  Beta posteriors (independent a posteriori under Dawid & Skene's conditional independence), i.e. the Bayes
  decision for each item; then, with equal label frequencies, combine follows the answer over the consensus
  exactly when the reviewer was right on more of those items than the pool. The one-coin matrix (accuracy on
  the diagonal, the rest spread evenly) is replaced by the full matrix (the counts with that one-coin matrix
  as a Dirichlet prior of `PRIOR_STRENGTH` items per row) only when the full one predicts each known answer
  better from the others (leave-one-out, less one nat per extra parameter), i.e. when there are
  label-specific errors (one label given too often). (Until issue 20 the reviewer entered at the end of its
  95% interval nearest chance and the pool at its point estimate: a reviewer measured at 70% against a pool at
  50% was overruled by it. The price of the change, in simulation: a reviewer at chance measured on ~30
  uncertain probe items now costs ~0.5 points against no review, where the cautious reading cost nothing.)
- `probe_weights`: the probe items' weights in both estimates. The items the pool finds uncertain are the kind
  reviewed (weight 1); the others (easier for both) top them up to `PROBE_EFFECTIVE_ITEMS` items' worth of
  evidence when the uncertain ones are fewer (a power prior, Ibrahim & Chen 2000, "Power prior distributions for
  regression models", Statistical Science 15(1), with power w = (PROBE_EFFECTIVE_ITEMS - n_uncertain) /
  n_certain, at most 1), and count nothing once the uncertain ones reach it. The certain items are a biased
  stand-in: the pool is confident on them by construction, so borrowing them raises the pool's accuracy more
  than the reviewer's; hence only as many as bring a small uncertain subset to ~30 items.

crowd-kit's `DawidSkene` (1.4.2) is not used: it fits a single class prior shared by all items by
unsupervised EM over many workers, while here the prior is each item's own pool posterior and the
reviewer's confusion is measured on items with known labels (no EM is needed, and its M-step with
`true_labels` is private API).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

NO_ANSWER = -1
CONFIDENCE = 0.95
PRIOR_STRENGTH = 50.0  # pseudo-items per row of the one-coin prior in `reviewer_confusion`
PROBE_EFFECTIVE_ITEMS = 30.0  # `probe_weights`: the certain probe items top a smaller uncertain subset up to this many items


def confusion_counts(
    true_idx: np.ndarray, answer_idx: np.ndarray, n_labels: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """(n_labels, n_labels) counts: [t, a] = items of true label t the reviewer answered a (each counted with its
    (n,) `weight`, default 1). `true_idx` and `answer_idx` are (n,) label indices; answers of NO_ANSWER (-1) are
    left out. Raises ValueError on mismatched shapes, an index outside 0..n_labels-1 or a negative weight."""
    true_idx, answer_idx = np.asarray(true_idx, dtype=int), np.asarray(answer_idx, dtype=int)
    if true_idx.shape != answer_idx.shape or true_idx.ndim != 1:
        raise ValueError(f"true_idx and answer_idx must be (n,) arrays of one length, got {true_idx.shape} and {answer_idx.shape}")
    weights = _weights(weight, len(true_idx))
    answered = answer_idx != NO_ANSWER
    if ((true_idx < 0) | (true_idx >= n_labels)).any() or ((answer_idx[answered] < 0) | (answer_idx[answered] >= n_labels)).any():
        raise ValueError(f"label indices must lie in 0..{n_labels - 1}")
    counts = np.zeros((n_labels, n_labels))
    np.add.at(counts, (true_idx[answered], answer_idx[answered]), weights[answered])
    return counts


def _weights(weight: np.ndarray | None, n: int) -> np.ndarray:
    """(n,) float weights, ones when None. Raises ValueError for another length or a negative weight."""
    if weight is None:
        return np.ones(n)
    weights = np.asarray(weight, dtype=float)
    if weights.shape != (n,) or (weights < 0).any():
        raise ValueError(f"weight must be an (n,) array of non-negative numbers for {n} items, got shape {weights.shape}")
    return weights


def probe_weights(uncertain: np.ndarray, *, effective: float = PROBE_EFFECTIVE_ITEMS) -> np.ndarray:
    """(m,) the weight of each probe item in the skill estimates (`reviewer_confusion`), from (m,) bool
    `uncertain` (the pool routes the item to review): 1 for an uncertain item, w for the others, with
    w = clip((effective - n_uncertain) / n_certain, 0, 1), so that the probe counts for min(effective, m) items
    while the uncertain ones are fewer than `effective`, and as the uncertain ones alone once they reach it.
    A power prior (Ibrahim & Chen 2000, Statistical Science 15(1)): the certain items' likelihood raised to the
    power w. No uncertain item: every item has weight min(1, effective / m). Raises ValueError for effective < 0."""
    uncertain = np.asarray(uncertain, dtype=bool)
    if effective < 0:
        raise ValueError(f"effective must be >= 0, got {effective}")
    n_uncertain, n_certain = int(uncertain.sum()), int((~uncertain).sum())
    w = min(1.0, max(0.0, effective - n_uncertain) / n_certain) if n_certain else 0.0
    return np.where(uncertain, 1.0, w)


def posterior_accuracy(correct: float, n: float) -> float:
    """The posterior mean of an accuracy after `correct` of `n` (weighted) items under a uniform Beta(1, 1) prior:
    (correct + 1) / (n + 2), Laplace's rule of succession. The one prior for the reviewer and the pool alike: on
    the same items, the reviewer's estimate exceeds the pool's exactly when it was right more often. (A prior at
    chance, Beta(1, n_labels - 1), did the same in simulation but pulls a pool measured on few items towards
    chance, where the seed's label frequencies alone would pick a label neither side gave.)
    Raises ValueError for correct outside [0, n]."""
    if not -1e-9 <= correct <= n + 1e-9:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    return (float(correct) + 1.0) / (float(n) + 2.0)


def confusion_from_answers(
    true_idx: np.ndarray,
    answer_idx: np.ndarray,
    n_labels: int,
    prior: float | np.ndarray = 1.0,
    *,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """(n_labels, n_labels) row-normalised confusion matrix P(answer = a | true = t), rows t, columns a.

    The posterior mean under a Dirichlet prior per row: (counts[t, a] + prior[t, a]) / sum_a(...), the counts
    weighted by the (n,) `weight` (default 1). `prior` is a
    scalar pseudo-count per cell (1.0: Laplace smoothing) or an (n_labels, n_labels) pseudo-count matrix,
    e.g. an earlier confusion matrix times a strength in items per row. A row with no items and no prior mass
    is uniform. Raises ValueError as `confusion_counts`, or for a negative prior."""
    prior_matrix = np.broadcast_to(np.asarray(prior, dtype=float), (n_labels, n_labels))
    if (prior_matrix < 0).any():
        raise ValueError("the Dirichlet prior's pseudo-counts must be >= 0")
    totals = confusion_counts(true_idx, answer_idx, n_labels, weight) + prior_matrix
    sums = totals.sum(axis=1, keepdims=True)
    return np.where(sums > 0, totals / np.where(sums > 0, sums, 1.0), 1.0 / n_labels)


def combine(pool_posterior: np.ndarray, answer_idx: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """(n, n_labels) combined posterior: pool_posterior[i, t] * confusion[t, answer_idx[i]], renormalised per item
    (Dawid & Skene 1979 eq. 2.5 with the pool's posterior as each item's prior).

    `pool_posterior`: (n, n_labels) the pool's probabilities (a row of zeros, every specialist abstaining,
    counts as uniform); `answer_idx`: (n,) the reviewer's answers, NO_ANSWER (-1) keeps the pool's row;
    `confusion`: (n_labels, n_labels) from `confusion_from_answers`. Raises ValueError on mismatched shapes."""
    pool = np.asarray(pool_posterior, dtype=float)
    answers = np.asarray(answer_idx, dtype=int)
    n_labels = confusion.shape[0]
    if pool.ndim != 2 or pool.shape != (len(answers), n_labels) or confusion.shape != (n_labels, n_labels):
        raise ValueError(f"shapes: pool_posterior {pool.shape}, answer_idx {answers.shape}, confusion {confusion.shape}")
    sums = pool.sum(axis=1, keepdims=True)
    prior = np.where(sums > 0, pool / np.where(sums > 0, sums, 1.0), 1.0 / n_labels)
    likelihood = np.where((answers == NO_ANSWER)[:, None], 1.0, confusion[:, np.clip(answers, 0, None)].T)
    joint = prior * likelihood
    total = joint.sum(axis=1, keepdims=True)
    return np.where(total > 0, joint / np.where(total > 0, total, 1.0), prior)


@dataclass(frozen=True)
class Accuracy:
    """An accuracy with its Wilson score interval (`confidence`, default 95%); None figures for 0 items."""

    correct: int
    n: int
    value: float | None
    low: float | None
    high: float | None


def accuracy_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> Accuracy:
    """`correct` of `n` with the Wilson score interval (E. B. Wilson, 1927, "Probable inference, the law of
    succession, and statistical inference"), computed by scipy.stats.binomtest(...).proportion_ci."""
    if n <= 0:
        return Accuracy(correct=0, n=0, value=None, low=None, high=None)
    interval = binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return Accuracy(correct=int(correct), n=int(n), value=correct / n, low=float(interval.low), high=float(interval.high))


def not_better(reviewer: Accuracy, pool_accuracy: float | None) -> bool:
    """True when the reviewer is not shown better than the pool: its interval's lower bound does not clear the
    pool's accuracy on the same items (or nothing was measured)."""
    return reviewer.low is None or pool_accuracy is None or reviewer.low <= pool_accuracy


def conservative_accuracy(accuracy: Accuracy, n_labels: int) -> float:
    """The end of the accuracy's interval nearest chance (1 / n_labels), or chance itself when the interval holds
    it (nothing measured: chance). No longer what `reviewer_confusion` uses (issue 20: read against the pool's
    point estimate it biased combine towards the pool); kept for callers that want a cautious figure."""
    chance = 1.0 / n_labels
    if accuracy.low is None or accuracy.low <= chance <= accuracy.high:
        return chance
    return accuracy.low if accuracy.low > chance else accuracy.high


def one_coin(accuracy: float, n_labels: int) -> np.ndarray:
    """(n_labels, n_labels) one-coin confusion: `accuracy` on the diagonal, (1 - accuracy) / (n_labels - 1) elsewhere."""
    matrix = np.full((n_labels, n_labels), (1.0 - accuracy) / max(n_labels - 1, 1))
    np.fill_diagonal(matrix, accuracy)
    return matrix


def reviewer_confusion(
    true_idx: np.ndarray,
    answer_idx: np.ndarray,
    n_labels: int,
    strength: float = PRIOR_STRENGTH,
    *,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """(n_labels, n_labels) P(answer = a | true = t), the confusion `combine` uses, from (n,) true and answered
    label indices (NO_ANSWER left out) with (n,) item weights (`probe_weights`; default 1). Used alike for the
    reviewer and for the pool (its consensus label as the "answer"), so both are estimated the same way.

    The one-coin matrix (`one_coin`) at the `posterior_accuracy` of the (weighted) answers, or, when the answers
    show label-specific errors, the posterior mean of each row under a Dirichlet prior of `strength` pseudo-items
    shaped as that one-coin matrix. Which of the two: the one that predicts each known answer better from the
    others (weighted leave-one-out log-likelihood, each item's own weight removed from the counts and from the
    one-coin accuracy, less one nat per extra parameter of the full matrix so that noise alone does not pick it).
    Fewer than 2 weighted items: the one-coin matrix. Raises ValueError as `confusion_counts`."""
    true_idx, answer_idx = np.asarray(true_idx, dtype=int), np.asarray(answer_idx, dtype=int)
    counts = confusion_counts(true_idx, answer_idx, n_labels, weight)
    n, correct = counts.sum(), np.trace(counts)
    coin = one_coin(posterior_accuracy(correct, n), n_labels)
    weights = _weights(weight, len(true_idx))
    used = (answer_idx != NO_ANSWER) & (weights > 0)
    if used.sum() < 2:
        return coin
    t, a, w = true_idx[used], answer_idx[used], weights[used]
    right = (t == a).astype(float)
    off = max(n_labels - 1, 1)
    coin_acc = (correct - w * right + 1.0) / (n - w + 2.0)  # each item predicted from the others
    coin_loo = np.where(right > 0, coin_acc, (1.0 - coin_acc) / off)
    full_loo = (counts[t, a] - w + strength * coin_loo) / (counts.sum(axis=1)[t] - w + strength)
    extra = n_labels * (n_labels - 1) - 1  # the full matrix's extra free parameters, one nat each (Akaike's price)
    if (w * np.log(full_loo)).sum() - extra <= (w * np.log(coin_loo)).sum():
        return coin
    return confusion_from_answers(true_idx, answer_idx, n_labels, prior=coin * strength, weight=weight)
