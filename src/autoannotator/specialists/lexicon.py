"""VADER lexicon sentiment: needs no training, for tasks whose labels map to negative/neutral/positive."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from autoannotator.specialists.base import LabelMapping, Specialist, register
from autoannotator.task import Task

VADER_LABELS = ["negative", "neutral", "positive"]
VADER_THRESHOLD = 0.05


def compound_to_probs(compound: np.ndarray, *, sharpness: float = 10.0) -> np.ndarray:
    """(n, 3) soft distribution whose argmax is VADER's usual rule (|compound| >= 0.05 is polar)."""
    logits = np.stack(
        [(-compound - VADER_THRESHOLD) * sharpness, np.zeros_like(compound), (compound - VADER_THRESHOLD) * sharpness],
        axis=1,
    )
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


@register("lexicon")
class LexiconSpecialist(Specialist):
    """VADER compound score as a negative/neutral/positive distribution, mapped onto the task labels."""

    trainable = False
    needs_training = False

    def __init__(self, task: Task, *, label_map: dict[str, str | None] | None = None) -> None:
        super().__init__(task, label_map=label_map)
        self.mapping = LabelMapping(VADER_LABELS, task, label_map)
        self.analyzer = SentimentIntensityAnalyzer()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> LexiconSpecialist:
        """A lexicon is not trained: fitting leaves it unchanged."""
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        compound = np.array([self.analyzer.polarity_scores(text)["compound"] for text in texts], dtype=float)
        return self.mapping.apply(compound_to_probs(compound))

    def _save_weights(self, folder: Path) -> None:
        """Nothing to save beyond the manifest: the lexicon ships with vaderSentiment."""

    def _load_weights(self, folder: Path) -> None:
        """Nothing to load."""
