"""LogME (You et al., ICML 2021): how well a model's features predict the labels, from the evidence of a
Bayesian linear model on them. Higher is better; no fine-tuning needed. Features in, a number out."""

from __future__ import annotations

import math

import numpy as np


def _evidence_one_column(sigma: np.ndarray, x2: np.ndarray, res_x2: float, n: int, d: int, *, max_iter: int = 100) -> tuple[float, float, float]:
    """(log evidence / n, alpha, beta) for one one-hot label column, by the fixed-point updates of the paper."""
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + res_x2
        alpha = gamma / (m2 + 1e-12)
        beta = (n - gamma) / (res2 + 1e-12)
        if abs(alpha / beta - t) / t < 1e-4:
            break
    t = alpha / beta
    m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
    res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + res_x2
    evidence = (
        d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * float(np.log(alpha + beta * sigma).sum())
        - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi)
    )  # fmt: skip
    return evidence / n, alpha, beta


def logme_details(features: np.ndarray, labels: np.ndarray) -> list[tuple[float, float, float]]:
    """Per class: (evidence per item, alpha, beta). `labels` are integer class ids."""
    features = np.asarray(features, dtype=np.float64)
    n, d = features.shape
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    sigma = np.zeros(d)
    sigma[: len(s)] = s**2
    results = []
    for k in np.unique(labels):
        y = (labels == k).astype(np.float64)
        x = u.T @ y
        x2 = np.zeros(d)
        x2[: len(x)] = x**2
        res_x2 = float(y @ y - (x**2).sum())
        results.append(_evidence_one_column(sigma, x2, res_x2, n, d))
    return results


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean LogME score over the classes."""
    return float(np.mean([evidence for evidence, _, _ in logme_details(features, labels)]))
