"""The audit guard of --target-accuracy (issue 20, defects 2 and 3): an anytime-valid one-sided test of "the
accepted labels are at least A accurate", looked at after every chunk, and its correction for an imperfect
reviewer, on seeded simulations with a known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from autoannotator.audit import (
    DEFAULT_ALPHA, agreement_rate, guard_message, judge, log_e_value, lowered_threshold, reviewer_accuracy_bounds,
)  # fmt: skip
from autoannotator.reviewer_skill import confusion_counts

N_LABELS = 3
LOOK_EVERY, AUDITED = 25, 600  # a look after every 25 audited answers (a chunk's worth), up to 600


def test_the_mixture_likelihood_ratio_is_the_truncated_beta_integral() -> None:
    for k, n, target in [(0, 0, 0.8), (7, 10, 0.8), (40, 60, 0.9), (55, 60, 0.6)]:
        integral, _ = quad(lambda q: q**k * (1 - q) ** (n - k), 0.0, target)
        expected = np.log(integral / target) - k * np.log(target) - (n - k) * np.log(1 - target)
        assert float(log_e_value(k, n, target=target)) == pytest.approx(expected, abs=1e-9)
    assert np.isneginf(log_e_value(3000, 3000, target=0.5)) or log_e_value(3000, 3000, target=0.5) < -100  # far above: no evidence
    with pytest.raises(ValueError):
        log_e_value(5, 4, target=0.8)


@pytest.mark.parametrize("p", [0.8, 0.85, 0.95])
def test_the_mixture_is_a_supermartingale_for_every_accuracy_at_or_above_the_target(p: float) -> None:
    """E[M_(n+1) | k, n] = p M(k + 1, n + 1) + (1 - p) M(k, n + 1) <= M(k, n) for p >= A, with equality at p = A:
    what Ville's inequality needs for P(ever M >= 1 / alpha) <= alpha."""
    k, n = np.meshgrid(np.arange(0, 41), np.arange(0, 41))
    k, n = k[k <= n], n[k <= n]
    now = np.exp(log_e_value(k, n, target=0.8))
    expected_next = p * np.exp(log_e_value(k + 1, n + 1, target=0.8)) + (1 - p) * np.exp(log_e_value(k, n + 1, target=0.8))
    assert (expected_next <= now * (1 + 1e-9)).all()
    if p == 0.8:
        assert np.allclose(expected_next, now)


def audit_answers(rng: np.random.Generator, accuracy: float, reviewer_accuracy: float = 1.0) -> np.ndarray:
    """(AUDITED,) bool: whether each audited consensus label (right with `accuracy`) agrees with the reviewer (right
    with `reviewer_accuracy`, its errors spread evenly over the other labels: it agrees with a wrong consensus
    label with probability 1 / (K - 1) of its errors)."""
    right = rng.random(AUDITED) < accuracy
    reviewer_right = rng.random(AUDITED) < reviewer_accuracy
    same_wrong = rng.random(AUDITED) < 1.0 / (N_LABELS - 1)
    return np.where(right, reviewer_right, ~reviewer_right & same_wrong)


def probe_counts(rng: np.random.Generator, reviewer_accuracy: float, items: int = 100) -> np.ndarray:
    """(K, K) confusion counts of a reviewer of `reviewer_accuracy` on a probe of `items` seed items."""
    truth = rng.integers(0, N_LABELS, items)
    answers = np.where(rng.random(items) < reviewer_accuracy, truth, (truth + rng.integers(1, N_LABELS, items)) % N_LABELS)
    return confusion_counts(truth, answers, N_LABELS)


def share_fired(runs: int, accuracy: float, target: float, *, reviewer_accuracy: float = 1.0, corrected: bool = True, seed: int = 0) -> float:
    """Share of `runs` seeded simulated runs in which `guard` fires at one of its looks (every LOOK_EVERY audited
    answers, on the whole audit so far, as the run calls it after every chunk). U is uninformative and every
    audited item is inside the threshold. With an imperfect reviewer each run measures it on its own probe and
    (corrected) gives the guard its counts."""
    rng = np.random.default_rng(seed)
    fired = 0
    for _ in range(runs):
        agree = audit_answers(rng, accuracy, reviewer_accuracy)
        u = rng.random(AUDITED) * 0.5
        counts = probe_counts(rng, reviewer_accuracy) if reviewer_accuracy < 1.0 and corrected else None
        for m in range(LOOK_EVERY, AUDITED + 1, LOOK_EVERY):
            if judge(u[:m], agree[:m], threshold=0.5, target=target, alpha=DEFAULT_ALPHA, reviewer_counts=counts).breached:
                fired += 1
                break
    return fired / runs


def test_a_true_promise_is_declared_broken_in_at_most_5_percent_of_runs_over_24_looks() -> None:
    """Issue 20, defect 2: accepted labels 5 points above the target (0.85 for 0.8), a reviewer that is always
    right, the guard looked at after every 25 audited answers up to 600: 2,000 seeded runs. Measured: 0 of 2,000
    (the bound is alpha = 0.1 over all looks; at targets 0.6 and 0.9, 0.2% and 0% of 1,000). The point-estimate
    rule it replaced (>= 30 audited answers whose mean is below the target) fires in 18.4% of these same runs
    (28.8% and 5.7% at targets 0.6 and 0.9), and in 100% of the 70%-reviewer runs below."""
    rate = share_fired(2000, 0.85, 0.8)
    assert rate <= 0.05 and rate <= DEFAULT_ALPHA


def test_at_the_target_itself_the_false_alarm_rate_stays_below_alpha() -> None:
    """The hardest true null, accuracy exactly the target: measured 1.0% of 500 runs (Ville's bound: 10%)."""
    assert share_fired(500, 0.8, 0.8, seed=1) <= DEFAULT_ALPHA


@pytest.mark.parametrize("target", [0.6, 0.9])
def test_a_broken_promise_is_found_in_most_runs(target: float) -> None:
    """Power: accepted labels 10 points below the target fire the guard by 600 audited answers in 98.2% (target
    0.6) and 100% (0.9) of 500 seeded runs (0.8: 99.6%); 5 points below, in 40%, 50% and 74%."""
    assert share_fired(500, target - 0.10, target, seed=2) >= 0.9


def test_agreement_with_a_70_percent_reviewer_is_not_read_as_accuracy() -> None:
    """Issue 20, defect 3: a reviewer right on 70% of items (measured on its own 100-item probe in each run),
    accepted labels 70% accurate, target 0.6: the expected agreement is 0.535, below 0.6, so the same test read as
    accuracy fires in 68% of 500 runs; against the agreement the target implies at the reviewer's lower bound
    (~0.44) it fires in 0.1% of 1,000 runs (0.1% too at accuracy 0.6 exactly). The price is power: labels 40%
    accurate (20 points below the target) fire it in 70% of 500 runs by 600 audited answers, 45% in 35%, 30% in 99%."""
    assert share_fired(500, 0.7, 0.6, reviewer_accuracy=0.7, corrected=False, seed=3) >= 0.5
    assert share_fired(1000, 0.7, 0.6, reviewer_accuracy=0.7, seed=4) <= 0.05
    assert share_fired(500, 0.4, 0.6, reviewer_accuracy=0.7, seed=5) >= 0.5


def test_the_agreement_a_target_implies_and_the_reviewer_bounds() -> None:
    assert agreement_rate(0.7, 0.7, 3) == pytest.approx(0.7 * 0.7 + 0.3 * 0.3 / 2)
    assert agreement_rate(0.8, 1.0, 3) == 0.8  # a reference reviewer: agreement is accuracy
    low, high = reviewer_accuracy_bounds(np.array([[35, 0], [0, 35]]) + np.array([[0, 15], [15, 0]]), alpha=0.05)
    assert 0.6 < low < 0.7 < high < 0.8
    assert reviewer_accuracy_bounds(np.zeros((3, 3)), alpha=0.05) == (0.0, 1.0)
    verdict = judge(np.zeros(100), np.zeros(100, dtype=bool), threshold=0.5, target=0.6, reviewer_counts=np.diag([10, 0, 0]) + np.eye(3, k=1) * 10)
    assert not verdict.active and not verdict.breached and verdict.threshold == 0.5 and "chance" in verdict.reason


def test_a_reviewer_near_chance_turns_the_guard_off_with_a_reason() -> None:
    """A reviewer right on 38 of 100 probe items (3 labels): its lower bound is below chance, agreement says
    nothing about accuracy, and the guard stays off however little the audit agrees."""
    counts = np.array([[13.0, 10, 10], [11, 13, 10], [11, 11, 12]])  # 38 right
    verdict = judge(np.linspace(0, 0.4, 200), np.zeros(200, dtype=bool), threshold=0.5, target=0.8, reviewer_counts=counts)
    assert not verdict.active and not verdict.breached and verdict.threshold == 0.5
    assert "not shown better than chance" in verdict.reason and "guard is off" in verdict.reason


def test_when_it_fires_the_threshold_drops_to_where_the_lower_bound_reaches_the_target() -> None:
    """Right below U = 0.25, wrong above: the new threshold is the loosest audited U whose items' one-sided 90%
    Clopper-Pearson lower bound reaches the target, not the loosest whose raw mean does."""
    u = np.linspace(0.01, 0.5, 60)
    agree = u < 0.25  # 29 right, then 31 wrong
    verdict = judge(u, agree, threshold=0.5, target=0.9)
    assert verdict.breached and verdict.active and 0.24 <= verdict.threshold < 0.25 and verdict.agreement == pytest.approx(29 / 60)
    agree_mixed = agree.copy()
    agree_mixed[[30, 31, 32]] = True  # three more right just above: the raw mean stays >= 0.9 up to item 32
    raw_mean = np.cumsum(agree_mixed) / np.arange(1, 61)
    assert raw_mean[32] >= 0.9 and lowered_threshold(u, agree_mixed, threshold=0.5, agreement_target=0.9, alpha=0.1) < u[32]
    assert lowered_threshold(u[30:], agree[30:], threshold=0.5, agreement_target=0.9, alpha=0.1) is None  # nothing reaches it
    verdict = judge(u[:20], agree[:20], threshold=0.5, target=0.9)
    assert (verdict.breached, verdict.threshold) == (False, 0.5)


def test_an_imperfect_reviewer_lowers_the_agreement_the_guard_tests_and_says_so() -> None:
    rng = np.random.default_rng(6)
    counts = probe_counts(rng, 0.7)
    verdict = judge(np.zeros(300), audit_answers(rng, 0.2, 0.7)[:300], threshold=0.5, target=0.6, reviewer_counts=counts)
    low, high = verdict.reviewer_accuracy
    assert verdict.breached and verdict.alpha_test == DEFAULT_ALPHA / 2 and low < np.trace(counts) / counts.sum() < high
    assert verdict.agreement_target == pytest.approx(agreement_rate(0.6, low, N_LABELS))
    event = {"threshold_after": verdict.threshold, "audited_accuracy": verdict.agreement, "n_audited": verdict.n_audited,
             "agreement_target": verdict.agreement_target, "alpha": verdict.alpha}  # fmt: skip
    message = guard_message(event, 0.6)
    assert "agreement with the reviewer" in message and "implies" in message and "false alarm rate at most 10%" in message
    assert "below the target accuracy 80.0%" in guard_message({"threshold_after": None, "audited_accuracy": 0.7, "n_audited": 40}, 0.8)
    assert verdict.to_dict()["agreement"] == verdict.agreement


def test_judge_refuses_bad_arguments() -> None:
    u, agree = np.zeros(3), np.ones(3, dtype=bool)
    with pytest.raises(ValueError):
        judge(u, agree[:2], threshold=0.5, target=0.8)
    with pytest.raises(ValueError):
        judge(u, agree, threshold=0.5, target=1.0)
    with pytest.raises(ValueError):
        judge(u, agree, threshold=0.5, target=0.8, alpha=0.0)
    with pytest.raises(ValueError):
        judge(u, agree, threshold=0.5, target=0.8, reviewer_counts=np.ones((2, 3)))
