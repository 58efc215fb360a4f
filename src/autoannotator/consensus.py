"""Consensus over the specialists' outputs (paper eqs. 2-5), as pure functions over arrays.

`probs` is always a (k, n, n_labels) array: k specialists, n items, labels in the task's order.
A row of zeros means that specialist abstains on that item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from scipy.special import entr

Rule = Literal["vote", "margin", "entropy", "learned"]
RULES = ("vote", "margin", "entropy", "learned")


class Posterior(Protocol):
    """A learned aggregator (see `autoannotator.stacking.Aggregator`)."""

    def posterior(self, probs: np.ndarray) -> np.ndarray: ...
ABSTAIN = -1


def votes_from_probs(probs: np.ndarray) -> np.ndarray:
    """(k, n) label index of each specialist's top class, ABSTAIN where its row is all zero."""
    votes = probs.argmax(axis=2)
    votes[probs.sum(axis=2) <= 0] = ABSTAIN
    return votes


def vote_counts(votes: np.ndarray, n_labels: int) -> np.ndarray:
    """(n, n_labels) number of specialists voting for each label; abstentions count for none."""
    k, n = votes.shape
    counts = np.zeros((n, n_labels), dtype=np.int64)
    for row in votes:
        valid = row != ABSTAIN
        np.add.at(counts, (np.nonzero(valid)[0], row[valid]), 1)
    return counts


def majority_label(counts: np.ndarray, mean_probs: np.ndarray) -> np.ndarray:
    """Majority vote (eq. 3); ties go to the tied label with the highest mean probability."""
    top = counts.max(axis=1, keepdims=True)
    tied = counts == top
    return np.where(tied, mean_probs, -np.inf).argmax(axis=1)


def vote_uncertainty(counts: np.ndarray, k: int) -> np.ndarray:
    """U = 1 - max_y #votes(y) / k (eq. 4); k counts abstaining specialists too."""
    return 1.0 - counts.max(axis=1) / float(k)


def mean_probabilities(probs: np.ndarray) -> np.ndarray:
    """(n, n_labels) average of the non-abstaining specialists' distributions."""
    present = (probs.sum(axis=2) > 0).astype(float)[..., None]
    total = (probs * present).sum(axis=0)
    n_present = np.maximum(present.sum(axis=0), 1.0)
    return total / n_present


def margin_uncertainty(mean_probs: np.ndarray) -> np.ndarray:
    """1 - (p_top - p_second) of the mean distribution: 0 when one label has all the mass."""
    ordered = np.sort(mean_probs, axis=1)
    return 1.0 - (ordered[:, -1] - ordered[:, -2])


def entropy_uncertainty(mean_probs: np.ndarray) -> np.ndarray:
    """Entropy of the mean distribution divided by log(n_labels), in [0, 1]: exactly 0 when one label has
    all the mass (0 log 0 = 0, no clipping), 1 for an item every specialist abstained on."""
    total = mean_probs.sum(axis=1, keepdims=True)
    n_labels = mean_probs.shape[1]
    p = np.where(total > 0, mean_probs / np.where(total > 0, total, 1.0), 1.0 / n_labels)
    return entr(p).sum(axis=1) / math.log(n_labels)


def route_by_threshold(uncertainty: np.ndarray, epsilon: float | None) -> np.ndarray:
    """Eq. 5: hard where U >= epsilon; epsilon None means any disagreement (U > 0)."""
    if epsilon is None:
        return uncertainty > 1e-12
    return uncertainty >= epsilon - 1e-12


def route_by_budget(uncertainty: np.ndarray, fraction: float) -> np.ndarray:
    """Hard for the ceil(fraction * n) most uncertain items (stable order), and only where U > 0."""
    n = len(uncertainty)
    n_hard = min(n, math.ceil(fraction * n - 1e-9))
    hard = np.zeros(n, dtype=bool)
    if n_hard > 0:
        order = np.argsort(-uncertainty, kind="stable")[:n_hard]
        hard[order] = True
    return hard & (uncertainty > 1e-12)


@dataclass(frozen=True)
class ConsensusResult:
    """Per item: majority label index, uncertainty under the chosen rule, whether it is hard."""

    labels: np.ndarray
    uncertainty: np.ndarray
    hard: np.ndarray
    votes: np.ndarray
    mean_probs: np.ndarray


def decide(
    probs: np.ndarray, *, rule: Rule = "vote", epsilon: float | None = None, budget: float | None = None,
    aggregator: Posterior | None = None,
) -> ConsensusResult:  # fmt: skip
    """Label, score and route one batch. `budget` (a fraction of items) overrides `epsilon` when given.
    Rule 'learned' takes its label and U = 1 - max posterior from `aggregator` (fitted on the seed); `mean_probs`
    is then that posterior."""
    if probs.ndim != 3 or probs.shape[0] == 0:
        raise ValueError("probs must be a (k, n, n_labels) array with k >= 1")
    if rule != "vote" and epsilon is None and budget is None:
        raise ValueError(f"the '{rule}' rule needs an epsilon or a review budget")
    k, _, n_labels = probs.shape
    votes = votes_from_probs(probs)
    counts = vote_counts(votes, n_labels)
    if rule == "learned" and aggregator is None:
        raise ValueError("the 'learned' rule needs an aggregator fitted on a seed")
    mean = aggregator.posterior(probs) if rule == "learned" else mean_probabilities(probs)
    labels = majority_label(counts, mean)
    if rule == "vote":
        uncertainty = vote_uncertainty(counts, k)
    elif rule == "margin":
        uncertainty = margin_uncertainty(mean)
    elif rule == "entropy":
        uncertainty = entropy_uncertainty(mean)
    elif rule == "learned":
        uncertainty = 1.0 - mean.max(axis=1)
    else:
        raise ValueError(f"unknown consensus rule '{rule}' (use vote, margin, entropy or learned)")
    if rule != "vote":
        labels = np.where(counts.max(axis=1) > 0, mean.argmax(axis=1), labels)
    hard = route_by_budget(uncertainty, budget) if budget is not None else route_by_threshold(uncertainty, epsilon)
    return ConsensusResult(labels=labels, uncertainty=uncertainty, hard=hard, votes=votes, mean_probs=mean)
