"""The learned consensus (`--rule learned`): stacked generalisation over the specialist pool.

Wolpert (1992), "Stacked generalization": every specialist trained on the seed is cross-fitted (k folds,
shuffled with the run's random seed) so that each seed item gets a prediction from a model that never saw it;
specialists not trained on the seed (lexicon, llm, saved or ready-made models) give their direct predictions.
A multinomial logistic regression on the stacked (k * n_labels) probabilities, C cross-validated, is the
aggregator: its posterior over the task labels gives the label (argmax) and U = 1 - max posterior.
A specialist that memorises the seed gains nothing: its out-of-fold predictions carry no memorised answers.

Calibration is measured by cross-validation on the seed: the aggregator's own out-of-fold posteriors give the
expected calibration error (top-label ECE, 15 equal-width bins; Guo et al. 2017, "On Calibration of Modern
Neural Networks"). The aggregator is saved as arrays (no pickles) in RUN/consensus/, which resumed runs and
Ray actors load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from autoannotator.errors import AnnotatorError
from autoannotator.specialists import Specialist
from autoannotator.specialists.linear_head import chosen_C, fit_head, head_proba, load_head, save_head

AGGREGATOR_DIR = "consensus"
FOLDS = 5
ECE_BINS = 15


def seed_folds(targets: np.ndarray, seed: int, n_folds: int = FOLDS, names: Sequence[str] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) index pairs over the seed, stratified by label: k = min(n_folds, the smallest count among
    labels with two or more items) folds, so every training fold holds every such label; a label with one item
    is held out once (its fold trains without it). Raises AnnotatorError when fewer than two labels have two or
    more items (a training fold would hold a single label); `names`: the label names it gives the counts by."""
    labels, counts = np.unique(targets, return_counts=True)
    repeated = labels[counts >= 2]
    if len(repeated) < 2:
        raise AnnotatorError(f"the learned consensus cross-fits the pool on the seed: it needs at least two labels with two or more seed "
                             f"items each, the seed has {dict(zip([names[i] for i in labels] if names else labels.tolist(), counts.tolist()))}; add seed items")  # fmt: skip
    k = min(n_folds, int(counts[counts >= 2].min()))
    common = np.flatnonzero(np.isin(targets, repeated))
    fold_of = np.empty(len(targets), dtype=int)
    for fold, (_, held_out) in enumerate(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(common)), targets[common])):
        fold_of[common[held_out]] = fold
    single = np.flatnonzero(~np.isin(targets, repeated))
    fold_of[single] = np.random.default_rng(seed).permutation(len(single)) % k
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def stacked_features(probs: np.ndarray) -> np.ndarray:
    """(k, n, n_labels) specialist probabilities -> (n, k * n_labels) aggregator features (abstention: zeros)."""
    k, n, n_labels = probs.shape
    return probs.transpose(1, 0, 2).reshape(n, k * n_labels)


def expected_calibration_error(posterior: np.ndarray, targets: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE of (n, n_labels) posteriors against (n,) true label indices (see `calibration_error`)."""
    return calibration_error(posterior.max(axis=1), posterior.argmax(axis=1) == targets, n_bins)


def calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of (n,) confidences in [0, 1] given to labels against (n,) bool "that label is right": sum over
    equal-width confidence bins of |accuracy - mean confidence| weighted by the bin's share of items
    (Guo et al. 2017, eq. 3)."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    error = 0.0
    for b in np.unique(bins):
        inside = bins == b
        error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


@dataclass
class Aggregator:
    """A fitted stacking aggregator over a named pool; `posterior` maps (k, n, n_labels) -> (n, n_labels)."""

    names: list[str]
    n_labels: int
    head: object  # a fitted sklearn LogisticRegression (rebuilt from arrays when loaded)
    ece: float
    n_seed: int
    n_folds: int
    seed_uncertainty: np.ndarray  # (n_seed,) out-of-fold U = 1 - max posterior on the seed
    seed_correct: np.ndarray | None = None  # (n_seed,) bool: the out-of-fold label was right (None: saved before it was kept)
    folder: Path | None = None

    def posterior(self, probs: np.ndarray) -> np.ndarray:
        """(n, n_labels) posterior over the task labels for (k, n, n_labels) probabilities in `names` order."""
        if probs.shape[0] != len(self.names):
            raise ValueError(f"the aggregator was fitted on {len(self.names)} specialists, got {probs.shape[0]}")
        return head_proba(self.head, stacked_features(probs), self.n_labels)

    def weights(self) -> dict[str, float]:
        """Each specialist's share of the aggregator's weight: the L2 norm of its block of coefficients."""
        coef = np.asarray(self.head.coef_)
        return {name: float(np.linalg.norm(coef[:, i * self.n_labels : (i + 1) * self.n_labels])) for i, name in enumerate(self.names)}

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        save_head(self.head, folder)
        np.save(folder / "seed_uncertainty.npy", self.seed_uncertainty)
        if self.seed_correct is not None:
            np.save(folder / "seed_correct.npy", self.seed_correct)
        meta = {"specialists": self.names, "n_labels": self.n_labels, "ece": self.ece, "n_seed": self.n_seed, "n_folds": self.n_folds}
        (folder / "aggregator.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        self.folder = folder.resolve()
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Aggregator:
        folder = Path(folder)
        meta = json.loads((folder / "aggregator.json").read_text(encoding="utf-8"))
        correct = folder / "seed_correct.npy"
        return cls(names=meta["specialists"], n_labels=meta["n_labels"], head=load_head(folder), ece=meta["ece"], n_seed=meta["n_seed"],
                   n_folds=meta["n_folds"], seed_uncertainty=np.load(folder / "seed_uncertainty.npy", allow_pickle=False),
                   seed_correct=np.load(correct, allow_pickle=False) if correct.is_file() else None, folder=folder.resolve())  # fmt: skip

    def summary(self) -> dict:
        """What the run summary reports about the aggregator."""
        return {"ece": round(self.ece, 4), "n_seed": self.n_seed, "folds": self.n_folds,
                "weights": {n: round(w, 3) for n, w in self.weights().items()}}  # fmt: skip


def out_of_fold_probs(
    specialists: Mapping[str, Specialist], trained_on_seed: set[str], texts: Sequence[str], labels: Sequence[str], seed: int,
    n_folds: int = FOLDS, rows: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(k, n, n_labels) seed predictions: cross-fitted over `n_folds` seeded folds for the specialists in
    `trained_on_seed` (each fold costs one training of each), direct for the others; and the (n,) seed label indices.
    `rows`: only these seed items are needed (the reviewer probe's), so the specialists that are not cross-fitted
    (LLM voters: each prediction may be a paid call) predict only them; the other rows are zeros (abstention)."""
    first = next(iter(specialists.values()))
    targets = first.label_indices(labels)
    folds = seed_folds(targets, seed, n_folds, names=first.task.label_names)
    probs = []
    for name, s in specialists.items():
        if name in trained_on_seed:
            probs.append(s.cross_val_proba(texts, labels, folds))
        elif rows is None:
            probs.append(s.predict_proba(list(texts)))
        else:
            direct = np.zeros((len(texts), len(first.task.label_names)))
            if len(rows):
                direct[np.asarray(rows, dtype=int)] = s.predict_proba([texts[i] for i in rows])
            probs.append(direct)
    return np.stack(probs), targets


def fit_aggregator(probs: np.ndarray, targets: np.ndarray, names: list[str], *, seed: int) -> Aggregator:
    """Fit the aggregator on (k, n, n_labels) out-of-fold seed probabilities and (n,) targets; its ECE, the
    seed's U and whether each seed label was right (what `--target-accuracy` certifies on) come from its own out-of-fold posteriors (k folds over the seed, C fixed to the chosen one)."""
    features = stacked_features(probs)
    n_labels = probs.shape[2]
    head = fit_head(features, targets, C=None, seed=seed)
    folds = seed_folds(targets, seed + 1)
    posterior = np.zeros((len(targets), n_labels))
    for train, held_out in folds:
        if len(np.unique(targets[train])) < 2:
            posterior[held_out] = head_proba(head, features[held_out], n_labels)
            continue
        fold_head = fit_head(features[train], targets[train], C=chosen_C(head), seed=seed)
        posterior[held_out] = head_proba(fold_head, features[held_out], n_labels)
    return Aggregator(names=names, n_labels=n_labels, head=head, ece=expected_calibration_error(posterior, targets), n_seed=len(targets),
                      n_folds=len(folds), seed_uncertainty=1.0 - posterior.max(axis=1), seed_correct=posterior.argmax(axis=1) == targets)  # fmt: skip
