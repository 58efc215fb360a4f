"""TF-IDF features plus logistic regression: fast, trained here, no downloads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from autoannotator.errors import AnnotatorError
from autoannotator.specialists.base import Specialist, register
from autoannotator.specialists.linear_head import chosen_C, fit_head, head_proba, load_head, save_head
from autoannotator.task import Task


@register("tfidf")
class TfidfSpecialist(Specialist):
    """Word 1-2-gram TF-IDF (sublinear tf) and a logistic regression (C cross-validated on the seed unless given;
    `class_weight: balanced` optional)."""

    def __init__(
        self, task: Task, *, C: float | None = None, class_weight: Literal["balanced"] | None = None, max_features: int = 100_000, seed: int = 0
    ) -> None:
        super().__init__(task, C=C, class_weight=class_weight, max_features=max_features, seed=seed)
        self.vectorizer = self._new_vectorizer(max_features)
        self.head = None

    @staticmethod
    def _new_vectorizer(max_features: int) -> TfidfVectorizer:
        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=max_features)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TfidfSpecialist:
        targets = self.label_indices(labels)
        features = self.vectorizer.fit_transform(list(texts))
        self.head = fit_head(features, targets, C=self.options["C"], seed=self.options["seed"], class_weight=self.options["class_weight"])
        return self

    def fold_options(self) -> dict:
        return self.options | ({"C": chosen_C(self.head)} if self.head is not None else {})

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.head is None:
            raise AnnotatorError("the tfidf specialist is not trained: give a labeled seed file (--seed)")
        return head_proba(self.head, self.vectorizer.transform(list(texts)), self.n_labels)

    def _save_weights(self, folder: Path) -> None:
        vocabulary = {term: int(i) for term, i in self.vectorizer.vocabulary_.items()}
        (folder / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        np.save(folder / "idf.npy", self.vectorizer.idf_)
        save_head(self.head, folder)

    def _load_weights(self, folder: Path) -> None:
        vocabulary = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
        self.vectorizer = self._new_vectorizer(self.options["max_features"])
        self.vectorizer.vocabulary_ = vocabulary
        self.vectorizer.idf_ = np.load(folder / "idf.npy", allow_pickle=False)
        self.head = load_head(folder)
