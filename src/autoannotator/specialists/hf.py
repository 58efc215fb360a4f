"""Any Hugging Face sequence-classification model (local folder or hub id), batched and length-sorted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoannotator.devices import auto_device
from autoannotator.errors import AnnotatorError
from autoannotator.models import default_encoder_path, quiet_transformers
from autoannotator.randomness import seeded_torch
from autoannotator.specialists.base import LabelMapping, Specialist, register
from autoannotator.task import Task

SAVED_MODEL_DIR = "model"


@register("hf")
class HFSpecialist(Specialist):
    """A transformers classifier. Used as is, its `id2label` is mapped onto the task labels (explicit
    `label_map`, else name or alias); `fit` puts a new head with the task labels on it and fine-tunes."""

    needs_training = False
    refits_from_scratch = False  # refinement continues training on the pool plus replay (paper §3.2)

    def __init__(
        self,
        task: Task,
        *,
        model: str | None = None,
        label_map: dict[str, str | None] | None = None,
        max_length: int = 128,
        batch_size: int = 64,
        device: str | None = None,
        epochs: int = 3,
        learning_rate: float = 1e-4,
        refine_learning_rate: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        train_batch_size: int = 16,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(
            task, model=model, label_map=label_map, max_length=max_length, batch_size=batch_size, device=device,
            epochs=epochs, learning_rate=learning_rate, refine_learning_rate=refine_learning_rate,
            weight_decay=weight_decay, warmup_ratio=warmup_ratio,
            train_batch_size=train_batch_size, seed=seed, trust_remote_code=trust_remote_code,
        )  # fmt: skip
        self.source = model or default_encoder_path()
        self.device = auto_device(device)
        self._model = None
        self._tokenizer = None
        self.mapping: LabelMapping | None = None

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
        import torch

        self._ensure_loaded()
        texts = list(texts)
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
        return self.mapping.apply(model_probs)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> HFSpecialist:
        """Put a new head with the task labels on the model and fine-tune it (cold start)."""
        self._from_pretrained(self.source, new_head=True)
        return self._train(texts, labels, learning_rate=self.options["learning_rate"])

    def update(self, texts: Sequence[str], labels: Sequence[str]) -> HFSpecialist:
        """Continue fine-tuning the current model (a refinement round), at the refinement learning rate."""
        self._ensure_loaded()
        return self._train(texts, labels, learning_rate=self.options["refine_learning_rate"])

    def _train(self, texts: Sequence[str], labels: Sequence[str], *, learning_rate: float) -> HFSpecialist:
        """Cross-entropy with AdamW, linear warm-up then decay, gradient clipping at 1.0; the same
        max_length as inference; bf16 autocast on a GPU that supports it."""
        import torch
        from transformers import get_linear_schedule_with_warmup

        targets = self.label_indices(labels)
        rng = np.random.default_rng(self.options["seed"])
        texts = list(texts)
        batch_size = self.options["train_batch_size"]
        steps = self.options["epochs"] * -(-len(texts) // batch_size)
        optimizer = torch.optim.AdamW(self._model.parameters(), lr=learning_rate, weight_decay=self.options["weight_decay"])
        schedule = get_linear_schedule_with_warmup(optimizer, int(self.options["warmup_ratio"] * steps), steps)
        use_bf16 = self.device == "cuda" and torch.cuda.is_bf16_supported()
        self._model.train()
        with seeded_torch(self.options["seed"]):  # dropout masks
            for _ in range(self.options["epochs"]):
                order = rng.permutation(len(texts))
                for start in range(0, len(texts), batch_size):
                    index = order[start : start + batch_size]
                    batch = self._tokenizer(
                        [texts[i] for i in index], truncation=True, max_length=self.options["max_length"],
                        padding=True, return_tensors="pt",
                    ).to(self.device)  # fmt: skip
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                        loss = self._model(**batch, labels=torch.as_tensor(targets[index], device=self.device)).loss
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self._model.parameters(), 1.0)
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad()
        self._model.eval()
        return self

    def _save_weights(self, folder: Path) -> None:
        self._ensure_loaded()
        self._model.save_pretrained(folder / SAVED_MODEL_DIR)
        self._tokenizer.save_pretrained(folder / SAVED_MODEL_DIR)

    def _load_weights(self, folder: Path) -> None:
        self.source = str(folder / SAVED_MODEL_DIR)
        self._from_pretrained(self.source, new_head=False)
