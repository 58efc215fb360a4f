"""The hf kind on the packaged all-MiniLM-L6-v2 (a BERT): fine-tune, round trip, label mapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autoannotator import AnnotatorError, Task
from autoannotator.errors import InputWarning
from autoannotator.specialists import create_specialist, load_specialist
from autoannotator.specialists.base import options_model
from autoannotator.specialists.hf import MIN_HELD_OUT, HFSpecialist
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


# A high learning rate on 100 tweets overfits within a few epochs: the held-out loss rises after its minimum.
OVERFIT = {"max_length": 32, "train_batch_size": 16, "batch_size": 32, "learning_rate": 1e-3, "warmup_ratio": 0.0,
           "validation_fraction": 0.25, "epochs": 6}  # fmt: skip


@pytest.mark.slow
def test_early_stopping_keeps_the_weights_of_the_best_epoch_not_the_last(task: Task, seed_data, tmp_path: Path) -> None:
    texts, labels = seed_data[0][:100], seed_data[1][:100]
    hf = create_specialist("hf", task, patience=5, **OVERFIT).fit(texts, labels)  # patience > epochs: every epoch runs
    log = hf.training_log_
    losses = log["held_out_loss"]
    assert log["held_out_items"] == 25 and log["train_items"] == 75 and log["epochs_run"] == 6 and len(losses) == 6
    assert log["best_epoch"] == int(np.argmin(losses)) + 1
    assert log["best_epoch"] < 6 and losses[-1] > min(losses), "precondition: a later epoch must be worse"
    _, held_out, _ = hf._held_out_split(hf.label_indices(labels))
    kept = hf._held_out_loss([texts[i] for i in held_out], hf.label_indices(labels)[held_out])
    assert kept == pytest.approx(min(losses), abs=1e-5)  # the model now is the best epoch's, not the last one
    reloaded = load_specialist(hf.save(tmp_path / "hf"), task)
    assert reloaded.training_log_ == log  # training.json travels with the weights
    assert np.allclose(reloaded.predict_proba(texts[:10]), hf.predict_proba(texts[:10]), atol=1e-5)


@pytest.mark.slow
def test_training_stops_after_patience_epochs_without_improvement_the_same_way_for_the_same_seed(task: Task, seed_data) -> None:
    texts, labels = seed_data[0][:100], seed_data[1][:100]
    first = create_specialist("hf", task, patience=1, **OVERFIT).fit(texts, labels)
    log = first.training_log_
    assert log["epochs_run"] == log["best_epoch"] + 1 < 6  # stopped one epoch after the best, before the maximum
    assert len(log["held_out_loss"]) == log["epochs_run"]
    again = create_specialist("hf", task, patience=1, **OVERFIT).fit(texts, labels)
    assert again.training_log_ == log
    a, b = first._model.state_dict(), again._model.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)  # split, batch order and dropout all seeded


@pytest.mark.slow
def test_a_seed_too_small_to_hold_out_trains_every_epoch_on_all_of_it(task: Task, seed_data) -> None:
    n = 10 * MIN_HELD_OUT - 20  # 10% of it is fewer than MIN_HELD_OUT items
    texts, labels = seed_data[0][:n], seed_data[1][:n]
    log = create_specialist("hf", task, epochs=2, max_length=32, learning_rate=2e-4).fit(texts, labels).training_log_
    assert log == {"train_items": n, "held_out_items": 0, "held_out_loss": [], "epochs_run": 2, "best_epoch": 2,
                   "no_held_out": f"validation_fraction 0.1 of {n} items holds out {n // 10} < {MIN_HELD_OUT}"}


def test_a_validation_fraction_too_large_for_the_seed_trains_without_a_hold_out_and_says_so(task: Task, seed_data, tmp_path: Path) -> None:
    """0.99 of a 30-row seed would leave nothing to train on (sklearn refuses such a split): no hold-out, a warning,
    and the reason in training.json."""
    texts, labels = seed_data[0][:30], seed_data[1][:30]
    with pytest.warns(InputWarning, match="leaves 0 to train on"):
        hf = create_specialist("hf", task, epochs=1, max_length=32, validation_fraction=0.99).fit(texts, labels)
    log = hf.training_log_
    assert (log["train_items"], log["held_out_items"], log["epochs_run"]) == (30, 0, 1)
    assert "fewer than its 3 labels" in log["no_held_out"]
    hf.save(tmp_path / "hf")
    assert "no_held_out" in json.loads((tmp_path / "hf" / "training.json").read_text())
    targets = hf.label_indices(seed_data[1][:100])
    with pytest.warns(InputWarning):  # 98 held out of 100: 2 training items for 3 labels
        train, held_out, why = create_specialist("hf", task, validation_fraction=0.98)._held_out_split(targets)
    assert held_out is None and len(train) == 100 and "leaves 2 to train on" in why


def test_held_out_split_is_seeded_and_stratified(task: Task, seed_data) -> None:
    hf = create_specialist("hf", task)
    targets = hf.label_indices(seed_data[1][:400])
    train, held_out, why = hf._held_out_split(targets)
    assert len(held_out) == 40 and len(train) == 360 and not set(train) & set(held_out) and why is None
    assert np.array_equal(held_out, hf._held_out_split(targets)[1])
    other = create_specialist("hf", task, seed=1)._held_out_split(targets)[1]
    assert not np.array_equal(held_out, other)
    share = np.bincount(targets[held_out], minlength=3) / 40
    assert np.allclose(share, np.bincount(targets, minlength=3) / 400, atol=0.03)


def test_fine_tuning_defaults_and_their_bounds_are_checked_by_the_options_model(task: Task) -> None:
    defaults = options_model(HFSpecialist).model_validate({})
    assert (defaults.learning_rate, defaults.epochs, defaults.train_batch_size, defaults.max_length) == (1e-4, 5, 16, 128)
    assert (defaults.validation_fraction, defaults.patience) == (0.1, 1)
    for option, value in [("validation_fraction", 1.0), ("validation_fraction", -0.1), ("patience", 0), ("epochs", 0),
                          ("learning_rate", 0), ("train_batch_size", 0), ("warmup_ratio", 1.0)]:  # fmt: skip
        with pytest.raises(AnnotatorError, match=f"specialist 'hf' option '{option}'"):
            create_specialist("hf", task, **{option: value})
