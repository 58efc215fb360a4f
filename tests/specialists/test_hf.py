"""The hf kind on the packaged all-MiniLM-L6-v2 (a BERT): fine-tune, round trip, label mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoannotator import AnnotatorError, Task
from autoannotator.specialists import create_specialist, load_specialist
from autoannotator.specialists.hf import HFSpecialist
from tests.specialists.conftest import accuracy

FAST = {"epochs": 2, "max_length": 48, "train_batch_size": 16, "batch_size": 32, "learning_rate": 2e-4}


@pytest.fixture(scope="module")
def trained(task: Task, seed_data) -> HFSpecialist:
    texts, labels = seed_data
    return create_specialist("hf", task, **FAST).fit(texts[:240], labels[:240])


@pytest.mark.slow
def test_fit_predict_save_load(trained: HFSpecialist, task: Task, held_out, tmp_path: Path) -> None:
    texts, gold = held_out
    probs = trained.predict_proba(texts)
    assert probs.shape == (len(texts), 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert accuracy(probs, gold, task.label_names) > 0.45
    saved = trained.save(tmp_path / "hf")
    assert (saved / "model" / "model.safetensors").is_file()
    assert not list(saved.rglob("*.bin"))
    reloaded = load_specialist(saved, task)
    assert np.allclose(reloaded.predict_proba(texts), probs, atol=1e-5)


@pytest.mark.slow
def test_length_sorted_batches_give_the_same_probabilities_as_one_at_a_time(trained: HFSpecialist, held_out) -> None:
    texts = held_out[0][:20]
    together = trained.predict_proba(texts)
    alone = np.vstack([trained.predict_proba([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-3)


def test_model_without_mappable_labels_is_refused(task: Task) -> None:
    # The packaged encoder has no classification labels: its head would say LABEL_0/LABEL_1.
    with pytest.raises(AnnotatorError, match=r"model labels \['LABEL_0', 'LABEL_1'\] match no task label"):
        create_specialist("hf", task).predict_proba(["hello"])


@pytest.mark.slow
def test_foreign_label_names_map_by_explicit_map_never_by_position(trained: HFSpecialist, task: Task, held_out, tmp_path: Path) -> None:
    # Save the trained model as if it came from the Hub with its own label names, in another order.
    model = trained._model
    model.config.id2label = {0: "bad", 1: "meh", 2: "good"}
    model.config.label2id = {"bad": 0, "meh": 1, "good": 2}
    folder = tmp_path / "foreign"
    model.save_pretrained(folder)
    trained._tokenizer.save_pretrained(folder)
    model.config.id2label = dict(enumerate(task.label_names))
    with pytest.raises(AnnotatorError, match=r"\['bad', 'meh', 'good'\] match no task label"):
        create_specialist("hf", task, model=str(folder)).predict_proba(["hi"])
    swapped = {"bad": "positive", "meh": "neutral", "good": "negative"}
    mapped = create_specialist("hf", task, model=str(folder), label_map=swapped)
    texts = held_out[0][:30]
    got, want = mapped.predict_proba(texts), trained.predict_proba(texts)[:, ::-1]
    assert np.allclose(got, want, atol=1e-2)  # same model; batch shapes move the third decimal on CPU


def test_missing_model_is_a_clear_error(task: Task, tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match="cannot load Hugging Face model"):
        create_specialist("hf", task, model=str(tmp_path / "no-such-model")).predict_proba(["x"])
