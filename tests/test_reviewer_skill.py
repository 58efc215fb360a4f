"""The reviewer's measured skill (confusion, accuracy interval) and the Dawid-Skene combination, on simulated data."""

from __future__ import annotations

import numpy as np
import pytest

from autoannotator.reviewer_skill import (
    NO_ANSWER, accuracy_interval, combine, confusion_from_answers, conservative_accuracy, not_better, reviewer_confusion,
)  # fmt: skip

N_LABELS = 3


def simulated_answers(truth: np.ndarray, accuracy: float, rng: np.random.Generator, *, biased: bool = False) -> np.ndarray:
    """A reviewer right with probability `accuracy`; its wrong answers spread over the other labels, or (biased)
    all on label 0 (label 0's own errors spread)."""
    wrong = rng.random(len(truth)) >= accuracy
    spread = (truth + rng.integers(1, N_LABELS, len(truth))) % N_LABELS
    other = np.where(truth == 0, spread, 0) if biased else spread
    return np.where(wrong, other, truth)


def test_confusion_rows_are_distributions_with_laplace_smoothing() -> None:
    confusion = confusion_from_answers(np.array([0, 0, 1, 1]), np.array([0, 1, 1, NO_ANSWER]), N_LABELS)
    assert np.allclose(confusion.sum(axis=1), 1.0)
    assert np.allclose(confusion[0], [2 / 5, 2 / 5, 1 / 5])  # one 0->0, one 0->1, plus 1 per cell
    assert np.allclose(confusion[1], [1 / 4, 2 / 4, 1 / 4])  # the unanswered item is left out
    assert np.allclose(confusion[2], 1 / 3)  # no items of label 2: the prior alone
    with pytest.raises(ValueError):
        confusion_from_answers(np.array([0, 3]), np.array([0, 0]), N_LABELS)


def test_combine_is_the_dawid_skene_update() -> None:
    pool = np.array([[0.6, 0.3, 0.1], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    confusion = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    combined = combine(pool, np.array([1, 2, NO_ANSWER]), confusion)
    expected_first = np.array([0.6 * 0.1, 0.3 * 0.7, 0.1 * 0.1])  # column 1: P(answer 1 | t)
    assert np.allclose(combined[0], expected_first / expected_first.sum())
    assert np.allclose(combined[1], confusion[:, 2] / confusion[:, 2].sum())  # all abstained: a uniform prior
    assert np.allclose(combined[2], [0.5, 0.5, 0.0])  # no answer: the pool's own posterior
    uninformative = np.full((N_LABELS, N_LABELS), 1 / 3)
    assert (combine(pool[:1], np.array([2]), uninformative).argmax(axis=1) == [0]).all()


@pytest.mark.parametrize("accuracy", [0.45, 0.65, 0.85])
def test_probe_interval_covers_the_true_accuracy(accuracy: float) -> None:
    """200 seeded probes of 100 items: the 95% Wilson interval holds the simulated reviewer's accuracy >= 90% of the time."""
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(200):
        truth = rng.integers(0, N_LABELS, 100)
        answers = simulated_answers(truth, accuracy, rng)
        measured = accuracy_interval(int((answers == truth).sum()), len(truth))
        covered += measured.low <= accuracy <= measured.high
    assert covered / 200 >= 0.90


def synthetic_run(seed: int, accuracy: float, *, biased: bool, n: int = 3000, probe: int = 100) -> tuple[float, float, float, float]:
    """A calibrated pool (true labels drawn from its posterior), hard items where U = 1 - max posterior > 0.4,
    a reviewer measured on a probe of `probe` items: (no review, combine, override, pool accuracy on hard items)."""
    rng = np.random.default_rng(seed)
    posterior = rng.dirichlet(np.full(N_LABELS, 0.7), size=n)
    truth = (rng.random((n, 1)) > posterior.cumsum(axis=1)).sum(axis=1)
    hard = 1.0 - posterior.max(axis=1) > 0.4
    answers = simulated_answers(truth, accuracy, rng, biased=biased)
    probe_truth = rng.integers(0, N_LABELS, probe)
    confusion = reviewer_confusion(probe_truth, simulated_answers(probe_truth, accuracy, rng, biased=biased), N_LABELS)
    no_review = posterior.argmax(axis=1)
    combined, overridden = no_review.copy(), no_review.copy()
    combined[hard] = combine(posterior[hard], answers[hard], confusion).argmax(axis=1)
    overridden[hard] = answers[hard]
    return (no_review == truth).mean(), (combined == truth).mean(), (overridden == truth).mean(), (no_review == truth)[hard].mean()


@pytest.mark.parametrize("biased", [False, True])
@pytest.mark.parametrize("accuracy", [0.3, 0.45])
def test_combine_with_a_weaker_reviewer_does_not_lower_accuracy(accuracy: float, biased: bool) -> None:
    """A reviewer worse than the pool on its hard items (the pool: ~0.50 there): across 20 seeded runs of 3,000
    items, combine is never more than 0.5 points below no review (what is left is the sampling noise of which
    answers happen to be right) and not below it on average; override is below it."""
    runs = np.array([synthetic_run(seed, accuracy, biased=biased) for seed in range(20)])
    no_review, combined, overridden, pool_on_hard = runs.T
    assert (pool_on_hard > accuracy).all()
    assert (combined >= no_review - 0.005).all()
    assert combined.mean() >= no_review.mean()
    assert overridden.mean() < no_review.mean()


def test_combine_follows_a_strong_reviewer() -> None:
    """A reviewer of accuracy 0.85: combine gains what override gains, within a point."""
    runs = np.array([synthetic_run(seed, 0.85, biased=False) for seed in range(10)])
    no_review, combined, overridden, _ = runs.T
    assert (combined > no_review + 0.1).all()
    assert combined.mean() >= overridden.mean() - 0.01


def test_conservative_accuracy_and_the_guard() -> None:
    assert conservative_accuracy(accuracy_interval(40, 100), N_LABELS) == pytest.approx(1 / 3)  # interval holds chance
    strong = accuracy_interval(80, 100)
    assert conservative_accuracy(strong, N_LABELS) == pytest.approx(strong.low)
    assert conservative_accuracy(accuracy_interval(10, 100), N_LABELS) == pytest.approx(accuracy_interval(10, 100).high)
    assert not_better(accuracy_interval(60, 100), 0.55)  # 0.60, but its interval reaches below 0.55
    assert not not_better(accuracy_interval(80, 100), 0.55)
    assert accuracy_interval(0, 0).value is None and not_better(accuracy_interval(0, 0), 0.5)
