"""Any Hugging Face sequence-classification model (local folder or hub id), batched and length-sorted."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from autoannotator.devices import auto_device
from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.models import default_encoder_path, quiet_transformers
from autoannotator.randomness import seeded_torch
from autoannotator.specialists.base import LabelMapping, Specialist, register
from autoannotator.task import Task

SAVED_MODEL_DIR = "model"
TRAINING_LOG = "training.json"
MIN_HELD_OUT = 20  # fewer held-out items than this make a validation loss too noisy to stop on: train all epochs


@register("hf")
class HFSpecialist(Specialist):
    """A transformers classifier. Used as is, its `id2label` is mapped onto the task labels (explicit
    `label_map`, else name or alias); `fit` puts a new head with the task labels on it and fine-tunes.

    Fine-tuning defaults are chosen for a 500-2,000-row seed on 2 CPU cores (README "Specialists";
    benchmarks/results/specialists.md): `learning_rate` 1e-4 (the usual 2e-5 leaves a new head nearly
    untrained in the ~100-400 steps such a seed gives), at most `epochs` 5 with early stopping, batches of
    `train_batch_size` 16 grouped by length, `max_length` 128 tokens (tweets and questions are far shorter;
    batches pad only to their longest text). Early stopping: a seeded, stratified `validation_fraction` (0.1)
    of the training texts is held out; after each epoch the cross-entropy of the held-out slice is measured,
    training stops once it has not improved for `patience` epochs, and the weights of the best epoch are kept
    (they were trained on the other 90%). With fewer than `MIN_HELD_OUT` held-out items, `validation_fraction`
    0, or a `validation_fraction` that leaves fewer training items than labels (warned), every epoch is trained
    on all of the texts and the last weights are kept; training.json says why (`no_held_out`). After training,
    `training_log_` records the per-epoch held-out loss and the chosen epoch (saved as training.json).
    """

    needs_training = False
    refits_from_scratch = False  # refinement continues training on the pool plus replay (paper §3.2)

    def __init__(
        self,
        task: Task,
        *,
        model: str | None = None,
        label_map: dict[str, str | None] | None = None,
        max_length: Annotated[int, Field(ge=8)] = 128,
        batch_size: Annotated[int, Field(ge=1)] = 64,
        device: str | None = None,
        epochs: Annotated[int, Field(ge=1)] = 5,
        learning_rate: Annotated[float, Field(gt=0)] = 1e-4,
        refine_learning_rate: Annotated[float, Field(gt=0)] = 2e-5,
        weight_decay: Annotated[float, Field(ge=0)] = 0.01,
        warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        train_batch_size: Annotated[int, Field(ge=1)] = 16,
        validation_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        patience: Annotated[int, Field(ge=1)] = 1,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(
            task, model=model, label_map=label_map, max_length=max_length, batch_size=batch_size, device=device,
            epochs=epochs, learning_rate=learning_rate, refine_learning_rate=refine_learning_rate,
            weight_decay=weight_decay, warmup_ratio=warmup_ratio, train_batch_size=train_batch_size,
            validation_fraction=validation_fraction, patience=patience, seed=seed, trust_remote_code=trust_remote_code,
        )  # fmt: skip
        self.source = model or default_encoder_path()
        self.device = auto_device(device)
        self._model = None
        self._tokenizer = None
        self.mapping: LabelMapping | None = None
        self.training_log_: dict | None = None

    def _from_pretrained(self, source: str, *, new_head: bool) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        quiet_transformers()

        extra = {}
        if new_head:
            names = self.task.label_names
            extra = {
                "num_labels": len(names),
                "id2label": dict(enumerate(names)),
                "label2id": {n: i for i, n in enumerate(names)},
                "ignore_mismatched_sizes": True,
            }
        trust = self.options["trust_remote_code"]
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust)
            with seeded_torch(self.options["seed"]):  # the new head's initial weights depend on the seed alone
                self._model = AutoModelForSequenceClassification.from_pretrained(
                    source, use_safetensors=True, trust_remote_code=trust, **extra
                )
        except (OSError, ValueError) as exc:
            raise AnnotatorError(f"cannot load Hugging Face model '{source}' (safetensors only): {str(exc).splitlines()[0]}") from None
        self._model.to(self.device).eval()
        id2label = self._model.config.id2label
        self.mapping = LabelMapping([id2label[i] for i in range(len(id2label))], self.task, self.options["label_map"])

    def _ensure_loaded(self) -> None:
        if self._model is None:
            self._from_pretrained(self.source, new_head=False)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self._ensure_loaded()
        return self.mapping.apply(self._model_proba(list(texts)))

    def _model_proba(self, texts: list[str]) -> np.ndarray:
        """(n, n_model_labels) softmax of the model's logits, in length-sorted batches."""
        import torch

        encoded = self._tokenizer(texts, truncation=True, max_length=self.options["max_length"])
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        n_model_labels = self._model.config.num_labels
        model_probs = np.zeros((len(texts), n_model_labels), dtype=np.float32)
        batch_size = self.options["batch_size"]
        use_bf16 = self.device == "cuda" and torch.cuda.is_bf16_supported()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            for start in range(0, len(texts), batch_size):
                index = order[start : start + batch_size]
                batch = self._tokenizer.pad(
                    {key: [encoded[key][i] for i in index] for key in encoded.keys()}, return_tensors="pt"
                ).to(self.device)
                logits = self._model(**batch).logits.float()
                model_probs[index] = torch.softmax(logits, dim=-1).cpu().numpy()
        return model_probs

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> HFSpecialist:
        """Put a new head with the task labels on the model and fine-tune it (cold start)."""
        self._from_pretrained(self.source, new_head=True)
        return self._train(texts, labels, learning_rate=self.options["learning_rate"])

    def update(self, texts: Sequence[str], labels: Sequence[str]) -> HFSpecialist:
        """Continue fine-tuning the current model (a refinement round), at the refinement learning rate."""
        self._ensure_loaded()
        return self._train(texts, labels, learning_rate=self.options["refine_learning_rate"])

    def _train(self, texts: Sequence[str], labels: Sequence[str], *, learning_rate: float) -> HFSpecialist:
        """Cross-entropy with AdamW, linear warm-up then decay over `epochs`, gradient clipping at 1.0, batches
        grouped by length (transformers' `get_length_grouped_indices`, as `group_by_length`); the same
        max_length as inference; bf16 autocast on a GPU that supports it. Early stopping on a held-out slice
        (class docstring); every random draw (split, batch order, dropout) comes from the `seed` option."""
        import torch
        from transformers import get_linear_schedule_with_warmup
        from transformers.trainer_pt_utils import get_length_grouped_indices

        targets, texts = self.label_indices(labels), list(texts)
        train, held_out, no_held_out = self._held_out_split(targets)
        batch_size, epochs = self.options["train_batch_size"], self.options["epochs"]
        encoded = self._tokenizer([texts[i] for i in train], truncation=True, max_length=self.options["max_length"])
        lengths, train_targets = [len(ids) for ids in encoded["input_ids"]], targets[train]
        steps = epochs * -(-len(train) // batch_size)
        optimizer = torch.optim.AdamW(self._model.parameters(), lr=learning_rate, weight_decay=self.options["weight_decay"])
        schedule = get_linear_schedule_with_warmup(optimizer, int(self.options["warmup_ratio"] * steps), steps)
        use_bf16 = self.device == "cuda" and torch.cuda.is_bf16_supported()
        order_generator = torch.Generator().manual_seed(self.options["seed"])
        losses: list[float] = []
        best_epoch, best_state = 0, None
        with seeded_torch(self.options["seed"]):  # dropout masks
            for epoch in range(1, epochs + 1):
                self._model.train()
                order = get_length_grouped_indices(lengths, batch_size, generator=order_generator)
                for start in range(0, len(order), batch_size):
                    index = order[start : start + batch_size]
                    batch = self._tokenizer.pad(
                        {key: [encoded[key][i] for i in index] for key in encoded.keys()}, return_tensors="pt"
                    ).to(self.device)
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                        loss = self._model(**batch, labels=torch.as_tensor(train_targets[index], device=self.device)).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self._model.parameters(), 1.0)
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad()
                if held_out is None:
                    continue
                losses.append(self._held_out_loss([texts[i] for i in held_out], targets[held_out]))
                if losses[-1] < min(losses[:-1], default=np.inf):
                    best_epoch = epoch
                    best_state = {k: v.detach().clone() for k, v in self._model.state_dict().items()}
                elif epoch - best_epoch >= self.options["patience"]:
                    break
        if best_state is not None:
            self._model.load_state_dict(best_state)
        self._model.eval()
        self.training_log_ = {
            "train_items": len(train), "held_out_items": 0 if held_out is None else len(held_out),
            "held_out_loss": [round(x, 6) for x in losses], "epochs_run": epoch, "best_epoch": best_epoch or epoch,
        } | ({"no_held_out": no_held_out} if no_held_out else {})  # fmt: skip
        return self

    def _held_out_split(self, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """(train, held-out, None) indices: a stratified `validation_fraction` slice drawn with the `seed` option;
        or (all, None, why) when that slice would hold fewer than MIN_HELD_OUT items, or leave fewer training
        items than labels in `targets` (a `validation_fraction` too large for the seed; warned as InputWarning)."""
        from sklearn.model_selection import train_test_split

        everything = np.arange(len(targets))
        fraction = self.options["validation_fraction"]
        n_held_out = int(round(fraction * len(targets)))
        counts = np.unique(targets, return_counts=True)[1]
        if n_held_out < MIN_HELD_OUT:
            return everything, None, f"validation_fraction {fraction} of {len(targets)} items holds out {n_held_out} < {MIN_HELD_OUT}"
        if len(targets) - n_held_out < len(counts):
            why = (f"validation_fraction {fraction} of {len(targets)} items leaves {len(targets) - n_held_out} to train on, "
                   f"fewer than its {len(counts)} labels")  # fmt: skip
            warnings.warn(f"hf: {why}; trained without a hold-out (no early stopping)", InputWarning, stacklevel=2)
            return everything, None, why
        stratify = targets if counts.min() >= 2 and n_held_out >= len(counts) else None
        train, held_out = train_test_split(everything, test_size=n_held_out, random_state=self.options["seed"], stratify=stratify)
        return np.sort(train), np.sort(held_out), None

    def _held_out_loss(self, texts: list[str], targets: np.ndarray) -> float:
        """Mean cross-entropy (nats) of the task-label distribution on held-out items."""
        self._model.eval()
        probs = self.mapping.apply(self._model_proba(texts))
        return float(-np.mean(np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, None))))

    def _save_weights(self, folder: Path) -> None:
        self._ensure_loaded()
        self._model.save_pretrained(folder / SAVED_MODEL_DIR)
        self._tokenizer.save_pretrained(folder / SAVED_MODEL_DIR)
        if self.training_log_ is not None:
            (folder / TRAINING_LOG).write_text(json.dumps(self.training_log_, indent=2), encoding="utf-8")

    def _load_weights(self, folder: Path) -> None:
        self.source = str(folder / SAVED_MODEL_DIR)
        self._from_pretrained(self.source, new_head=False)
        log = folder / TRAINING_LOG
        self.training_log_ = json.loads(log.read_text(encoding="utf-8")) if log.is_file() else None
