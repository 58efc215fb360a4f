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


@pytest.mark.slow
def test_hub_model_abstains_where_its_top_label_maps_to_null(task: Task, held_out, tmp_path: Path) -> None:
    # A Hub-style three-label model (negative/neutral/positive) used on a two-label task with neutral -> null.
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from autoannotator.models import default_encoder_path

    labels = {0: "negative", 1: "neutral", 2: "positive"}
    model = AutoModelForSequenceClassification.from_pretrained(
        default_encoder_path(), num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    tokenizer = AutoTokenizer.from_pretrained(default_encoder_path())
    texts = held_out[0][:40]
    with torch.inference_mode():
        logits = model(**tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")).logits
    others = torch.maximum(logits[:, 0], logits[:, 2])
    model.classifier.bias.data[1] += float(torch.median(others - logits[:, 1]))  # neutral on top for about half the texts
    model.save_pretrained(tmp_path / "three")
    tokenizer.save_pretrained(tmp_path / "three")
    binary = Task.from_dict({"name": "polarity", "labels": ["negative", "positive"]})
    own = create_specialist("hf", task, model=str(tmp_path / "three")).predict_proba(texts)
    mapped = create_specialist("hf", binary, model=str(tmp_path / "three"), label_map={"neutral": None}).predict_proba(texts)
    neutral_top = own.argmax(axis=1) == 1
    assert 5 < neutral_top.sum() < 35
    assert np.array_equal(mapped[neutral_top], np.zeros((neutral_top.sum(), 2)))
    kept = own[~neutral_top][:, [0, 2]]
    assert np.allclose(mapped[~neutral_top], kept / kept.sum(axis=1, keepdims=True), atol=1e-5)
