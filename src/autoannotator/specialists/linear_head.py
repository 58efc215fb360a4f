"""A logistic-regression head shared by the sklearn-based specialists, saved as plain arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

HEAD_FILE = "head.npz"


def fit_head(features: np.ndarray, targets: np.ndarray, *, C: float, seed: int) -> LogisticRegression:
    """Fit a multinomial logistic regression; balanced classes so a skewed seed set still trains every label."""
    if len(np.unique(targets)) < 2:
        from autoannotator.errors import AnnotatorError

        raise AnnotatorError("training data holds fewer than two distinct labels")
    return LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=seed).fit(features, targets)


def head_proba(head: LogisticRegression, features: np.ndarray, n_labels: int) -> np.ndarray:
    """(n, n_labels) probabilities; labels the head never saw in training get probability 0."""
    probs = np.zeros((features.shape[0], n_labels))
    probs[:, head.classes_] = head.predict_proba(features)
    return probs


def save_head(head: LogisticRegression, folder: Path) -> None:
    np.savez(folder / HEAD_FILE, coef=head.coef_, intercept=head.intercept_, classes=head.classes_)


def load_head(folder: Path) -> LogisticRegression:
    """Rebuild a fitted LogisticRegression from its arrays (no pickle: allow_pickle stays off)."""
    with np.load(folder / HEAD_FILE, allow_pickle=False) as arrays:
        head = LogisticRegression()
        head.coef_ = arrays["coef"]
        head.intercept_ = arrays["intercept"]
        head.classes_ = arrays["classes"]
    return head
