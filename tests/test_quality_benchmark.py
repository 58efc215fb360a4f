"""The helpers benchmarks/quality.py's figures rest on: the simulated reviewer, the whole-run routing it simulates
(checked against a real `Annotator` run) and the calibration error."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import EXAMPLE, ROOT

sys.path.append(str(ROOT / "benchmarks"))  # appended: benchmarks/math.py must not shadow the standard library
import quality  # noqa: E402

from autoannotator.stacking import calibration_error, expected_calibration_error  # noqa: E402


def test_simulated_reviewer_has_its_accuracy_and_spreads_its_mistakes() -> None:
    gold = np.random.default_rng(1).integers(0, 3, 30_000)
    answers = quality.simulated_answers(gold, 3, 0.65, (0, 2))
    assert abs((answers == gold).mean() - 0.65) < 0.01
    wrong = answers != gold
    offsets = (answers[wrong] - gold[wrong]) % 3  # 1 or 2: each wrong label about equally often
    assert set(np.unique(offsets)) == {1, 2} and abs((offsets == 1).mean() - 0.5) < 0.02
    assert (quality.simulated_answers(gold, 3, 0.65, (0, 2)) == answers).all()  # seeded
    assert (quality.simulated_answers(gold, 3, 0.65, (1, 2)) != answers).any()
    assert (quality.simulated_answers(gold, 3, 1.0, (0, 2)) == gold).all()


def test_whole_run_routing_spends_the_budget_over_the_stream() -> None:
    u = np.random.default_rng(3).random(1_000)
    for fraction in (0.0, 0.1, 0.2, 0.5):
        hard = quality.route_whole_run(u, np.zeros(1_000, dtype=bool), fraction, np.zeros(0), chunk_size=128)
        assert hard.sum() == round(fraction * 1_000)


def test_calibration_error_of_confidences() -> None:
    correct = np.arange(1_000) < 800
    assert calibration_error(np.full(1_000, 0.8), correct) == pytest.approx(0.0)
    assert calibration_error(np.full(1_000, 0.99), correct) == pytest.approx(0.19)
    posterior = np.random.default_rng(0).dirichlet([1, 1, 1], 500)
    targets = np.random.default_rng(1).integers(0, 3, 500)
    assert calibration_error(posterior.max(axis=1), posterior.argmax(axis=1) == targets) == expected_calibration_error(posterior, targets)


def test_simulated_routing_gives_the_labels_of_an_annotator_run() -> None:
    """The benchmark scores once and routes every budget itself; a real `Annotator(rule='learned', budget=0.2)` run
    over several chunks must end with exactly the same labels (check_annotator raises otherwise)."""
    tweets = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str, keep_default_na=False)
    seed = pd.read_csv(EXAMPLE / "seed.csv", dtype=str, keep_default_na=False).iloc[:300][["text", "label"]]
    test = tweets.iloc[:400].rename(columns={"gold_label": "label"})[["text", "label"]].reset_index(drop=True)
    specs = [("tfidf", "tfidf", {"C": 1.0}), ("lexicon", "lexicon", {})]
    scores = quality.score_pool("tweets", specs, seed, test, random_seed=0, cache=None)
    line = quality.check_annotator("tweets", specs, seed, test, scores, random_seed=0, budget=0.2, chunk_size=150)
    assert "review share 20.0%" in line and "every label equal" in line


def test_review_modes_override_only_reviewed_items_and_combine_follows_a_trusted_reviewer() -> None:
    labels = np.array([0, 1, 2, 0])
    posterior = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    hard = np.array([True, True, False, False])
    answers = np.array([1, 1, 0, 2])
    near_perfect = np.full((3, 3), 0.01) + np.eye(3) * 0.97
    modes = quality.review_modes(labels, posterior, hard, answers, near_perfect)
    assert modes["none"].tolist() == [0, 1, 2, 0]
    assert modes["override"].tolist() == [1, 1, 2, 0]  # answers only where reviewed
    assert modes["combine"].tolist() == [1, 1, 2, 0]
    chance = np.full((3, 3), 1 / 3)  # a reviewer at chance moves nothing
    assert quality.review_modes(labels, posterior, hard, answers, chance)["combine"].tolist() == [0, 1, 2, 0]


def test_targets_are_marked_from_the_figures() -> None:
    def pool(learned: float, margin: float, vote: float, paper_sim: float, learned_sim_at_paper: float) -> dict:
        def rule(acc: float, sim_at_paper: float = 0.0) -> dict:
            budgets = {b: {"share": b, "gold": acc, "simulated": acc} for b in quality.BUDGETS}
            return {"auroc": 0.85, "ece": 0.04, "budgets": budgets | {"paper share": {"share": 0.3, "gold": acc, "simulated": sim_at_paper}}}

        return {"pools": {"fast": {"rules": {"learned": rule(learned, learned_sim_at_paper), "margin": rule(margin), "vote": rule(vote),
                                             "paper rule": {"share": 0.3, "gold": 0.9, "simulated": paper_sim}}}}}  # fmt: skip

    met = dict((t.split(" (")[0].split(":")[0], ok) for t, _, ok in quality.targets({"a": pool(0.9, 0.88, 0.87, 0.70, 0.74)}, "fast"))
    assert all(met.values()), met
    missed = quality.targets({"a": pool(0.9, 0.91, 0.87, 0.70, 0.72), "b": pool(0.8, 0.8, 0.8, 0.70, 0.72)}, "fast")
    assert [ok for _, _, ok in missed] == [True, True, True, False, False]  # mean 0.85 at 20%; margin above learned; +2 points only
