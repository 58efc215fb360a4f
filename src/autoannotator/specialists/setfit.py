"""SetFit (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts"): contrastive fine-tuning of a
sentence-transformers encoder on pairs of seed texts, then a logistic-regression head on its embeddings."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from autoannotator.errors import AnnotatorError
from autoannotator.randomness import global_random_state_kept
from autoannotator.specialists.base import Specialist, register
from autoannotator.specialists.embedding import EmbeddingSpecialist
from autoannotator.task import Task

BODY_DIR = "body"


@register("setfit")
class SetFitSpecialist(EmbeddingSpecialist):
    """The `embedding` specialist with its encoder fine-tuned first by the `setfit` library (cosine-similarity
    loss on pairs of seed texts: same label 1, different labels 0). The pair budget is `max_steps` optimizer
    steps of `pair_batch_size` pairs (setfit's `max_steps`; 200 x 16 = 3,200 pairs by default); then the
    logistic-regression head of `embedding` (C, class_weight) is fitted on the fine-tuned, L2-normalized
    embeddings. Cross-fitting (`cross_val_proba`) fine-tunes a fresh encoder per fold: the encoder has seen
    the seed, so refitting only the head would leak it."""

    def __init__(
        self,
        task: Task,
        *,
        encoder: str | None = None,
        max_steps: Annotated[int, Field(ge=1)] = 200,
        pair_batch_size: Annotated[int, Field(ge=2)] = 16,
        body_learning_rate: Annotated[float, Field(gt=0)] = 2e-5,
        batch_size: int = 64,
        C: float | None = 1.0,
        class_weight: Literal["balanced"] | None = None,
        device: str | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
    ) -> None:
        Specialist.__init__(
            self, task, encoder=encoder, max_steps=max_steps, pair_batch_size=pair_batch_size,
            body_learning_rate=body_learning_rate, batch_size=batch_size, C=C, class_weight=class_weight,
            device=device, seed=seed, trust_remote_code=trust_remote_code,
        )  # fmt: skip
        self.head = None

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> SetFitSpecialist:
        """Contrastive fine-tuning of the encoder on pairs of `texts`, then the head; raises AnnotatorError
        when the texts hold fewer than two labels (no negative pairs)."""
        from datasets import Dataset

        try:
            from setfit import SetFitModel, Trainer, TrainingArguments
        except ImportError:
            raise AnnotatorError("the setfit specialist needs the setfit package: pip install 'autoannotator[setfit]'") from None

        targets = self.label_indices(labels)
        if len(np.unique(targets)) < 2:
            raise AnnotatorError("training data holds fewer than two distinct labels")
        model = SetFitModel(model_body=self.encoder)
        with tempfile.TemporaryDirectory() as scratch, global_random_state_kept():
            args = TrainingArguments(
                output_dir=scratch, batch_size=self.options["pair_batch_size"], max_steps=self.options["max_steps"],
                body_learning_rate=self.options["body_learning_rate"], seed=self.options["seed"],
                report_to="none", save_strategy="no", show_progress_bar=False,
            )  # fmt: skip
            trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": list(texts), "label": targets.tolist()}))
            trainer.train_embeddings(list(texts), targets.tolist(), args=args)
        return super().fit(texts, labels)

    def fold_options(self) -> dict:
        return dict(self.options)

    def cross_val_proba(self, texts: Sequence[str], labels: Sequence[str], folds) -> np.ndarray:  # noqa: ANN001
        return Specialist.cross_val_proba(self, texts, labels, folds)

    def _save_weights(self, folder: Path) -> None:
        self.encoder.save(str(folder / BODY_DIR), safe_serialization=True)
        super()._save_weights(folder)

    def _load_weights(self, folder: Path) -> None:
        self.options["encoder"] = str(folder / BODY_DIR)
        self.__dict__.pop("encoder", None)
        super()._load_weights(folder)
