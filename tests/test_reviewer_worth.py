"""What the reviewer is worth (`reviewer_worth`): the predicted output accuracy at a review share against the realised
one, in seeded simulation where the truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from autoannotator.reviewer_worth import expected_accuracy, reviewer_worth


def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n items: U, whether the pool is right (less often at high U), whether a reviewer is right (weaker at high U too)."""
    u = rng.uniform(0, 1, n)
    pool_right = rng.uniform(size=n) < 0.95 - 0.6 * u
    reviewer_right = rng.uniform(size=n) < 0.85 - 0.2 * u
    return u, pool_right, reviewer_right


@pytest.mark.parametrize("share", [0.1, 0.2, 0.3, 0.5])
def test_the_predicted_accuracy_is_unbiased_and_within_a_few_points_of_the_realised_one(share: float) -> None:
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(200):
        seed_u, seed_right, _ = draw(rng, 600)
        probe = rng.choice(600, 100, replace=False)
        probe_u = seed_u[probe]
        probe_right = rng.uniform(size=100) < 0.85 - 0.2 * probe_u
        u, pool_right, reviewer_right = draw(rng, 5000)
        reviewed = np.argsort(-u)[: int(share * 5000)]
        final = pool_right.copy()
        final[reviewed] = reviewer_right[reviewed]
        errors.append(expected_accuracy(share, seed_u, seed_right, probe_u, probe_right) - final.mean())
    assert abs(np.mean(errors)) < 0.01  # unbiased to a point
    assert np.mean(np.abs(errors)) < 0.035  # a single run is off by 1.5-3 points (600 seed, 100 probe items: noise, not bias)


def test_the_table_says_when_the_reviewer_alone_beats_the_setting_and_prices_each_share() -> None:
    seed_u = np.linspace(0, 1, 100)
    seed_right = seed_u < 0.5  # a pool right on half the items
    strong = reviewer_worth(seed_u, seed_right, seed_u, np.ones(100, bool), n_items=1000, cost_per_review=0.01, chosen_share=0.2)
    assert strong["alone_better"] and strong["reviewer_alone"] == {"accuracy": 1.0, "cost_usd": 10.0}
    assert [r["share"] for r in strong["curve"]][0] == 0.0 and strong["curve"][0]["accuracy"] == 0.5
    assert strong["chosen"]["cost_usd"] == 2.0
    weak = reviewer_worth(seed_u, seed_right, seed_u, np.zeros(100, bool), n_items=1000, cost_per_review=None, chosen_share=0.2)
    assert not weak["alone_better"] and weak["chosen"]["cost_usd"] is None and weak["curve"][-1]["accuracy"] < 0.1
    with pytest.raises(ValueError, match="share must be in"):
        expected_accuracy(1.5, seed_u, seed_right, seed_u, np.ones(100, bool))
