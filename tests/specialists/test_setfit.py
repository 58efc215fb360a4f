"""The setfit kind on the packaged all-MiniLM-L6-v2 with a tiny pair budget: the encoder is fine-tuned, the run's
seed fixes it, weights round-trip as safetensors, cross-fitting fine-tunes per fold."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from autoannotator import AnnotatorError, Task
from autoannotator.specialists import create_specialist, load_specialist

TINY = {"max_steps": 4, "pair_batch_size": 8, "batch_size": 32}


@pytest.mark.slow
def test_contrastive_fine_tuning_moves_the_encoder_and_is_seeded(task: Task, seed_data, tmp_path: Path) -> None:
    texts, labels = seed_data[0][:60], seed_data[1][:60]
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    first = create_specialist("setfit", task, **TINY).fit(texts, labels)
    assert (random.random(), np.random.rand()) == before  # setfit's global set_seed is undone
    frozen = create_specialist("embedding", task)
    probe = texts[:8]
    assert not np.allclose(first.embed(probe), frozen.embed(probe), atol=1e-4)  # the encoder itself was trained
    again = create_specialist("setfit", task, **TINY).fit(texts, labels)
    assert np.allclose(first.predict_proba(probe), again.predict_proba(probe), atol=1e-6)
    other = create_specialist("setfit", task, seed=1, **TINY).fit(texts, labels)
    assert not np.allclose(first.embed(probe), other.embed(probe), atol=1e-4)
    saved = first.save(tmp_path / "setfit")
    assert list((saved / "body").rglob("*.safetensors")) and not list(saved.rglob("*.bin")) and not list(saved.rglob("*.pkl"))
    assert np.allclose(load_specialist(saved, task).predict_proba(probe), first.predict_proba(probe), atol=1e-5)


@pytest.mark.slow
def test_cross_fitting_fine_tunes_the_encoder_per_fold(task: Task, seed_data) -> None:
    # Refitting only the head on embeddings from an encoder tuned on every seed item would leak the held-out folds.
    texts, labels = seed_data[0][:40], seed_data[1][:40]
    setfit = create_specialist("setfit", task, **TINY)
    folds = [(np.arange(20, 40), np.arange(20)), (np.arange(20), np.arange(20, 40))]
    calls = []
    original = type(setfit).fit

    def counting_fit(self, x, y):  # noqa: ANN001, ANN202
        calls.append(len(x))
        return original(self, x, y)

    type(setfit).fit = counting_fit
    try:
        probs = setfit.cross_val_proba(texts, labels, folds)
    finally:
        type(setfit).fit = original
    assert calls == [20, 20] and probs.shape == (40, 3) and np.allclose(probs.sum(axis=1), 1.0)


def test_a_single_label_seed_is_refused(task: Task) -> None:
    with pytest.raises(AnnotatorError, match="fewer than two distinct labels"):
        create_specialist("setfit", task, **TINY).fit(["a", "b", "c"], ["positive"] * 3)
