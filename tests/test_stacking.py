"""The learned consensus (`--rule learned`): out-of-fold stacking without leakage, calibration, fallback, reuse."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.specialists import Specialist, create_specialist
from autoannotator.specialists.base import register
from autoannotator.stacking import AGGREGATOR_DIR, expected_calibration_error, fit_aggregator, out_of_fold_probs

LABELS = ["alpha", "beta", "gamma"]


@register("lookup_memoriser")
class LookupSpecialist(Specialist):
    """Memorises its training set: one-hot on a text it has seen, uniform elsewhere (a 1-NN at distance 0)."""

    def __init__(self, task: Task, *, seed: int = 0) -> None:
        super().__init__(task, seed=seed)
        self.memory: dict[str, int] = {}

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> LookupSpecialist:
        self.memory = dict(zip(texts, self.label_indices(labels).tolist()))
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        probs = np.full((len(texts), self.n_labels), 1.0 / self.n_labels)
        for i, text in enumerate(texts):
            if text in self.memory:
                probs[i] = np.eye(self.n_labels)[self.memory[text]]
        return probs

    def _save_weights(self, folder: Path) -> None:
        (folder / "memory.json").write_text(json.dumps(self.memory), encoding="utf-8")

    def _load_weights(self, folder: Path) -> None:
        self.memory = json.loads((folder / "memory.json").read_text(encoding="utf-8"))


def synthetic(n: int, seed: int) -> pd.DataFrame:
    """Texts of filler words plus one cue word of the item's label (70%) or of another label (30%)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.integers(3))
        cue = label if rng.random() < 0.7 else int(rng.integers(3))
        words = [f"w{int(w)}" for w in rng.integers(0, 300, size=6)] + [f"cue{cue}x{int(rng.integers(4))}", f"n{seed}i{i}"]
        rows.append({"text": " ".join(rng.permutation(words)), "label": LABELS[label]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def abc_task() -> Task:
    return Task.from_dict({"name": "abc", "labels": LABELS})


def test_ece_is_small_for_calibrated_and_large_for_overconfident_posteriors() -> None:
    rng = np.random.default_rng(0)
    posterior = rng.dirichlet(np.ones(3), size=20_000)
    targets = np.array([rng.choice(3, p=p) for p in posterior])  # labels drawn from the stated probabilities
    assert expected_calibration_error(posterior, targets) < 0.02
    sharpened = posterior**4 / (posterior**4).sum(axis=1, keepdims=True)  # same argmax, overconfident
    assert expected_calibration_error(sharpened, targets) > 0.1


def test_a_specialist_that_memorises_the_seed_gains_no_weight(abc_task: Task) -> None:
    seed = synthetic(300, seed=1)
    texts, labels = seed["text"].tolist(), seed["label"].tolist()
    pool = {"tfidf": create_specialist("tfidf", abc_task).fit(texts, labels), "lookup": LookupSpecialist(abc_task).fit(texts, labels)}
    probs, targets = out_of_fold_probs(pool, set(pool), texts, labels, seed=0)
    aggregator = fit_aggregator(probs, targets, list(pool), seed=0)
    weights = aggregator.weights()
    assert weights["lookup"] < 0.2 * weights["tfidf"], weights
    assert aggregator.ece < 0.1
    # Fitted on in-sample predictions instead, the memoriser looks perfect and takes over: what cross-fitting prevents.
    leaky = fit_aggregator(np.stack([s.predict_proba(texts) for s in pool.values()]), targets, list(pool), seed=0)
    assert leaky.weights()["lookup"] > leaky.weights()["tfidf"]


def test_learned_rule_in_a_run_matches_the_honest_specialist_and_saves_its_aggregator(abc_task: Task, tmp_path: Path) -> None:
    seed, data = synthetic(300, seed=1), synthetic(300, seed=2)
    honest = create_specialist("tfidf", abc_task).fit(seed["text"].tolist(), seed["label"].tolist())
    honest_accuracy = (np.array(LABELS)[honest.predict_proba(data["text"].tolist()).argmax(axis=1)] == data["label"]).mean()
    run = Annotator(abc_task, specialists={"honest": "tfidf", "lookup": "lookup_memoriser"}, run_dir=tmp_path / "run", rule="learned", epsilon=1.0)
    result = run.annotate(data.drop(columns="label"), seed=seed)
    assert result.summary.rule == "learned" and result.summary.consensus["ece"] < 0.1
    accuracy = (result.frame["consensus_label"] == data["label"]).mean()
    assert accuracy >= honest_accuracy - 0.02, (accuracy, honest_accuracy)
    folder = tmp_path / "run" / AGGREGATOR_DIR
    assert sorted(p.name for p in folder.iterdir()) == ["aggregator.json", "head.npz", "seed_correct.npy", "seed_uncertainty.npy"]
    assert json.loads((folder / "aggregator.json").read_text())["specialists"] == ["honest", "lookup"]
    u = result.frame["uncertainty"].to_numpy(dtype=float)
    assert ((0 <= u) & (u <= 2 / 3)).all() and len(np.unique(u)) > 50  # 1 - max posterior: graded, not a vote count


def test_learned_rule_without_a_seed_falls_back_to_the_vote_rule_and_says_so(task: Task, small_tweets, tmp_path: Path) -> None:
    run = Annotator(task, specialists=["lexicon"], run_dir=tmp_path / "run", rule="learned", budget=0.1)
    summary = run.annotate(small_tweets).summary
    assert summary.rule == "vote"
    assert "needs a labeled seed" in summary.consensus["fallback"]
    assert not (tmp_path / "run" / AGGREGATOR_DIR).exists()


def test_aggregator_is_refitted_on_seed_and_reviewed_items_after_a_refinement_round(abc_task: Task, tmp_path: Path) -> None:
    seed, data = synthetic(200, seed=1), synthetic(240, seed=3)
    run = Annotator(abc_task, specialists={"honest": "tfidf", "lookup": "lookup_memoriser"}, run_dir=tmp_path / "run", rule="learned",
                    budget=0.25, chunk_size=120, reviewer="gold:label", refine={"beta": 30, "min_gate": 0})  # fmt: skip
    summary = run.annotate(data, seed=seed).summary
    assert summary.rounds, "no refinement round ran"
    refitted = json.loads((tmp_path / "run" / AGGREGATOR_DIR / "round-1" / "aggregator.json").read_text())
    reviewed = sum(n for source, n in summary.counts.items() if source == "gold")
    assert 200 + 30 <= refitted["n_seed"] <= 200 + reviewed
    assert summary.consensus["n_seed"] == json.loads((tmp_path / "run" / AGGREGATOR_DIR / f"round-{len(summary.rounds)}" / "aggregator.json").read_text())["n_seed"]
    assert abs(summary.review_fraction - 0.25) <= 0.01
