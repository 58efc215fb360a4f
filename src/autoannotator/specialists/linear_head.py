"""A logistic-regression head shared by the sklearn-based specialists, saved as plain arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

from autoannotator.errors import AnnotatorError

HEAD_FILE = "head.npz"
C_GRID = tuple(float(c) for c in np.logspace(-2, 3, 11))  # 0.01 ... 1000, half a decade apart
CV_FOLDS = 5


def fit_head(
    features: np.ndarray, targets: np.ndarray, *, C: float | None, seed: int, class_weight: str | None = None
) -> LogisticRegression:
    """Fit a multinomial logistic regression on (n, dim) features and (n,) label indices.

    `C` None: the inverse regularisation strength is chosen from `C_GRID` by stratified `CV_FOLDS`-fold
    cross-validation on the training data (log loss; folds shuffled with `seed`), as in scikit-learn's
    LogisticRegressionCV; a label with a single example leaves too little to cross-validate, then C = 1.
    `class_weight` 'balanced' reweights classes inversely to their frequency (macro recall over accuracy);
    None (default) fits the data as it is. Raises AnnotatorError when fewer than two labels are present.
    """
    counts = np.unique(targets, return_counts=True)[1]
    if len(counts) < 2:
        raise AnnotatorError("training data holds fewer than two distinct labels")
    folds = min(CV_FOLDS, int(counts.min()))
    if C is None and folds >= 2:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return LogisticRegressionCV(Cs=list(C_GRID), cv=cv, scoring="neg_log_loss", max_iter=2000, class_weight=class_weight,
                                    l1_ratios=(0.0,), use_legacy_attributes=False, random_state=seed).fit(features, targets)  # fmt: skip
    return LogisticRegression(C=1.0 if C is None else C, max_iter=2000, class_weight=class_weight, random_state=seed).fit(features, targets)


def chosen_C(head: LogisticRegression) -> float:
    """The C the head was fitted with (the cross-validated choice for LogisticRegressionCV)."""
    return float(np.ravel(head.C_)[0]) if hasattr(head, "C_") else float(head.C)


def head_proba(head: LogisticRegression, features: np.ndarray, n_labels: int) -> np.ndarray:
    """(n, n_labels) probabilities; labels the head never saw in training get probability 0."""
    probs = np.zeros((features.shape[0], n_labels))
    probs[:, head.classes_] = head.predict_proba(features)
    return probs


def save_head(head: LogisticRegression, folder: Path) -> None:
    np.savez(folder / HEAD_FILE, coef=head.coef_, intercept=head.intercept_, classes=head.classes_, C=chosen_C(head))


def load_head(folder: Path) -> LogisticRegression:
    """Rebuild a fitted LogisticRegression from its arrays (no pickle: allow_pickle stays off)."""
    with np.load(folder / HEAD_FILE, allow_pickle=False) as arrays:
        head = LogisticRegression(C=float(arrays["C"]) if "C" in arrays else 1.0)
        head.coef_ = arrays["coef"]
        head.intercept_ = arrays["intercept"]
        head.classes_ = arrays["classes"]
    return head
