import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from autoannotator.consensus import (
    ABSTAIN,
    decide,
    entropy_uncertainty,
    margin_uncertainty,
    route_by_budget,
    vote_counts,
    vote_uncertainty,
)


def one_hot(votes: list[list[int]], n_labels: int = 3, p: float = 0.9) -> np.ndarray:
    """(k, n, n_labels) probabilities where specialist s puts p on votes[s][i] (-1: abstain)."""
    k, n = len(votes), len(votes[0])
    probs = np.full((k, n, n_labels), (1 - p) / (n_labels - 1))
    for s in range(k):
        for i in range(n):
            if votes[s][i] == ABSTAIN:
                probs[s, i] = 0
            else:
                probs[s, i, votes[s][i]] = p
    return probs


def test_paper_uncertainty_on_hand_built_votes() -> None:
    # rows are specialists, columns items: item 0 unanimous, item 1 two of three, item 2 all different
    result = decide(one_hot([[0, 1, 0], [0, 1, 1], [0, 2, 2]]))
    assert result.labels.tolist()[:2] == [0, 1]
    assert np.allclose(result.uncertainty, [0.0, 1 / 3, 2 / 3])
    assert result.hard.tolist() == [False, True, True]  # default epsilon: any disagreement


def test_epsilon_threshold_is_inclusive() -> None:
    probs = one_hot([[0, 1, 0], [0, 1, 1], [0, 2, 2]])
    assert decide(probs, epsilon=1 / 3).hard.tolist() == [False, True, True]
    assert decide(probs, epsilon=0.5).hard.tolist() == [False, False, True]
    assert decide(probs, epsilon=0.0).hard.tolist() == [True, True, True]


def test_majority_not_unanimity() -> None:
    result = decide(one_hot([[2] * 4, [2] * 4, [2] * 4, [2, 0, 0, 1], [1, 2, 0, 2]]), epsilon=0.5)
    assert result.labels.tolist() == [2, 2, 2, 2]
    assert np.allclose(result.uncertainty, [0.2, 0.2, 0.4, 0.2])
    assert not result.hard.any()


def test_ties_break_on_mean_probability() -> None:
    probs = one_hot([[0], [1]])
    probs[1, 0] = [0.02, 0.97, 0.01]
    result = decide(probs)
    assert result.labels.tolist() == [1]
    assert result.uncertainty.tolist() == [0.5]


def test_abstaining_specialist_counts_in_k_but_votes_for_nothing() -> None:
    probs = one_hot([[0, ABSTAIN], [0, 1], [ABSTAIN, 1]])
    counts = vote_counts(decide(probs).votes, 3)
    assert counts.tolist() == [[2, 0, 0], [0, 2, 0]]
    assert np.allclose(vote_uncertainty(counts, 3), [1 / 3, 1 / 3])


def test_probability_rules() -> None:
    sure = np.array([[1.0, 0.0, 0.0]])
    even = np.array([[1 / 3, 1 / 3, 1 / 3]])
    assert margin_uncertainty(sure)[0] == pytest.approx(0.0)
    assert margin_uncertainty(even)[0] == pytest.approx(1.0)
    assert entropy_uncertainty(sure)[0] == pytest.approx(0.0, abs=1e-6)
    assert entropy_uncertainty(even)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs an epsilon"):
        decide(one_hot([[0], [1]]), rule="margin")


def test_budget_sends_the_most_uncertain_first() -> None:
    u = np.array([0.1, 0.9, 0.0, 0.5, 0.7])
    assert route_by_budget(u, 0.4).tolist() == [False, True, False, False, True]
    assert route_by_budget(u, 1.0).tolist() == [True, True, False, True, True]  # never items with U = 0
    assert not route_by_budget(u, 0.0).any()


@given(arrays(np.int64, st.tuples(st.integers(1, 7), st.integers(1, 30)), elements=st.integers(0, 3)))
def test_vote_rule_properties(votes: np.ndarray) -> None:
    k = votes.shape[0]
    result = decide(one_hot(votes.tolist(), n_labels=4))
    counts = vote_counts(votes, 4)
    assert np.all(result.uncertainty >= 0) and np.all(result.uncertainty <= 1 - 1 / k + 1e-12)
    assert np.array_equal(result.hard, counts.max(axis=1) < k)  # hard exactly where the specialists disagree
    assert np.all(counts[np.arange(len(result.labels)), result.labels] == counts.max(axis=1))  # a majority label


@pytest.mark.parametrize("rule", ["entropy", "margin"])
def test_unanimous_one_hot_items_are_never_reviewed_even_at_budget_one(rule: str) -> None:
    probs = np.zeros((3, 4, 3))
    probs[:, 0, 0] = 1.0  # all three sure of label 0
    probs[:, 1, 2] = 1.0  # all three sure of label 2
    probs[:, 2] = [[0.6, 0.4, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]  # disputed
    probs[:, 3] = 0.0  # every specialist abstains
    result = decide(probs, rule=rule, budget=1.0)
    assert result.uncertainty[0] == 0.0 and result.uncertainty[1] == 0.0  # exactly, not 5e-11
    assert result.hard.tolist() == [False, False, True, True]
    assert result.uncertainty[3] == pytest.approx(1.0)
