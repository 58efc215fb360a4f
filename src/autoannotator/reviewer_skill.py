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
- `reviewer_confusion`: the matrix `combine` is given. A probe of ~100 items leaves each cell of a full matrix
  noisy (about ±0.08 per cell with 33 items per row), and on synthetic data that noise alone let a reviewer
  near chance lower the final accuracy. So the reviewer is first described by the one-coin matrix of the
  simplest Dawid-Skene model (accuracy on the diagonal, the rest spread evenly) at a conservative accuracy
  (the end of its 95% interval nearest chance, or chance itself when the interval holds it: an answer then
  moves nothing). The full matrix (that one-coin matrix as a Dirichlet prior of `PRIOR_STRENGTH` items per
  row, plus the counts) replaces it only when it predicts the known answers better (leave-one-out), i.e.
  when the reviewer has label-specific errors (e.g. one label it gives too often); it learns them as known
  items accumulate (probe, audited reviewed items).

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


def confusion_counts(true_idx: np.ndarray, answer_idx: np.ndarray, n_labels: int) -> np.ndarray:
    """(n_labels, n_labels) counts: [t, a] = items of true label t the reviewer answered a. `true_idx` and
    `answer_idx` are (n,) label indices; answers of NO_ANSWER (-1) are left out. Raises ValueError on
    mismatched shapes or an index outside 0..n_labels-1."""
    true_idx, answer_idx = np.asarray(true_idx, dtype=int), np.asarray(answer_idx, dtype=int)
    if true_idx.shape != answer_idx.shape or true_idx.ndim != 1:
        raise ValueError(f"true_idx and answer_idx must be (n,) arrays of one length, got {true_idx.shape} and {answer_idx.shape}")
    answered = answer_idx != NO_ANSWER
    if ((true_idx < 0) | (true_idx >= n_labels)).any() or ((answer_idx[answered] < 0) | (answer_idx[answered] >= n_labels)).any():
        raise ValueError(f"label indices must lie in 0..{n_labels - 1}")
    counts = np.zeros((n_labels, n_labels))
    np.add.at(counts, (true_idx[answered], answer_idx[answered]), 1.0)
    return counts


def confusion_from_answers(
    true_idx: np.ndarray, answer_idx: np.ndarray, n_labels: int, prior: float | np.ndarray = 1.0
) -> np.ndarray:
    """(n_labels, n_labels) row-normalised confusion matrix P(answer = a | true = t), rows t, columns a.

    The posterior mean under a Dirichlet prior per row: (counts[t, a] + prior[t, a]) / sum_a(...). `prior` is a
    scalar pseudo-count per cell (1.0: Laplace smoothing) or an (n_labels, n_labels) pseudo-count matrix,
    e.g. an earlier confusion matrix times a strength in items per row. A row with no items and no prior mass
    is uniform. Raises ValueError as `confusion_counts`, or for a negative prior."""
    prior_matrix = np.broadcast_to(np.asarray(prior, dtype=float), (n_labels, n_labels))
    if (prior_matrix < 0).any():
        raise ValueError("the Dirichlet prior's pseudo-counts must be >= 0")
    totals = confusion_counts(true_idx, answer_idx, n_labels) + prior_matrix
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
    it (nothing measured: chance)."""
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
    true_idx: np.ndarray, answer_idx: np.ndarray, n_labels: int, strength: float = PRIOR_STRENGTH
) -> np.ndarray:
    """(n_labels, n_labels) the confusion `combine` uses, from (n,) true and answered label indices (NO_ANSWER
    left out): the one-coin matrix at the `conservative_accuracy` of the answers, or, when the answers show
    label-specific errors, the counts with a Dirichlet prior of `strength` pseudo-items per row shaped as
    that one-coin matrix. Which of the two: the one that predicts each known answer better from the others
    (leave-one-out log-likelihood, closed form from the counts, less one nat per extra parameter of the full
    matrix so that noise alone does not pick it). Raises ValueError as `confusion_counts`."""
    true_idx, answer_idx = np.asarray(true_idx, dtype=int), np.asarray(answer_idx, dtype=int)
    counts = confusion_counts(true_idx, answer_idx, n_labels)
    n, correct = counts.sum(), np.trace(counts)
    coin = one_coin(conservative_accuracy(accuracy_interval(int(correct), int(n)), n_labels), n_labels)
    if n < 2:
        return coin
    t, a = np.nonzero(counts)
    weight = counts[t, a]
    right = t == a  # leave-one-out one-coin: the accuracy of the other n - 1 answers (Laplace)
    coin_acc = (correct - right + 1.0) / (n + 1.0)
    coin_loo = np.where(right, coin_acc, (1.0 - coin_acc) / max(n_labels - 1, 1))
    prior = coin * strength
    full_loo = (counts[t, a] - 1.0 + prior[t, a]) / (counts.sum(axis=1)[t] - 1.0 + strength)
    extra = n_labels * (n_labels - 1) - 1  # the full matrix's extra free parameters, one nat each (Akaike's price)
    if (weight * np.log(full_loo)).sum() - extra <= (weight * np.log(coin_loo)).sum():
        return coin
    return confusion_from_answers(true_idx, answer_idx, n_labels, prior=prior)
