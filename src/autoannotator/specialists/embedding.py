"""A sentence-transformers encoder with a logistic-regression head."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from autoannotator.devices import auto_device
from autoannotator.errors import AnnotatorError
from autoannotator.models import default_encoder_path, quiet_transformers
from autoannotator.specialists.base import Specialist, register
from autoannotator.specialists.linear_head import chosen_C, fit_head, head_proba, load_head, save_head
from autoannotator.task import Task


@register("embedding")
class EmbeddingSpecialist(Specialist):
    """Frozen sentence embeddings (default: the packaged all-MiniLM-L6-v2) and a logistic regression: C = 1 by default
    (plain logistic regression; measured above the cross-validated choice, benchmarks/results/specialist_heads.md),
    `C: null` cross-validates it on the seed; `class_weight: balanced` trades accuracy for macro recall."""

    def __init__(
        self,
        task: Task,
        *,
        encoder: str | None = None,
        batch_size: int = 64,
        C: float | None = 1.0,
        class_weight: Literal["balanced"] | None = None,
        device: str | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(
            task, encoder=encoder, batch_size=batch_size, C=C, class_weight=class_weight, device=device, seed=seed,
            trust_remote_code=trust_remote_code,
        )
        self.head = None

    @cached_property
    def encoder(self):  # noqa: ANN201 - SentenceTransformer is imported lazily
        from sentence_transformers import SentenceTransformer

        quiet_transformers()

        name = self.options["encoder"] or default_encoder_path()
        try:
            return SentenceTransformer(
                name, device=auto_device(self.options["device"]), trust_remote_code=self.options["trust_remote_code"]
            )
        except OSError as exc:
            raise AnnotatorError(f"cannot load encoder '{name}': {str(exc).splitlines()[0]}") from None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) L2-normalized embeddings."""
        return self.encoder.encode(
            list(texts), batch_size=self.options["batch_size"], normalize_embeddings=True, show_progress_bar=False
        )

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> EmbeddingSpecialist:
        targets = self.label_indices(labels)
        self.head = fit_head(self.embed(texts), targets, C=self.options["C"], seed=self.options["seed"],
                             class_weight=self.options["class_weight"])  # fmt: skip
        return self

    def fold_options(self) -> dict:
        return self.options | ({"C": chosen_C(self.head)} if self.head is not None else {})

    def cross_val_proba(self, texts: Sequence[str], labels: Sequence[str], folds) -> np.ndarray:  # noqa: ANN001
        """As `Specialist.cross_val_proba`, embedding the texts once: only the head is refitted per fold."""
        features, targets = self.embed(texts), self.label_indices(labels)
        probs = np.zeros((len(features), self.n_labels))
        C = self.fold_options()["C"]
        for train, held_out in folds:
            head = fit_head(features[train], targets[train], C=C, seed=self.options["seed"], class_weight=self.options["class_weight"])
            probs[held_out] = head_proba(head, features[held_out], self.n_labels)
        return probs

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.head is None:
            raise AnnotatorError("the embedding specialist is not trained: give a labeled seed file (--seed)")
        return head_proba(self.head, self.embed(texts), self.n_labels)

    def _save_weights(self, folder: Path) -> None:
        save_head(self.head, folder)

    def _load_weights(self, folder: Path) -> None:
        self.head = load_head(folder)
