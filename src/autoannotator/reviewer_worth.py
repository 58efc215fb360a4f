"""What the reviewer is worth (issue 20, build 3): the expected accuracy of the whole output at each review share with
*this* reviewer (its answers on the probe, not gold), the reviewer alone on every item, and the cost of each.

Model. The run reviews the items the pool is least sure of: at share s, the top s of the items by uncertainty U.
The output's expected accuracy is then

    E[acc](s) = (1/n) * sum over the seed items the run would accept (U <= q_s) of [pool right]  +  s * r(s)

where q_s is the (1 - s) quantile of the seed's out-of-fold U (the learned consensus's, else the probe items' own),
and r(s) is the reviewer's expected accuracy on the seed items above q_s (the region it would review): the mean
of r(U) over them, r(U) a logistic regression of "the reviewer was right" on U fitted on every answered probe item
(`reviewer_accuracy_at`; two parameters, so a region holding few probe items borrows strength from the rest;
Laplace's mean when the probe's answers are all right or all wrong).

After the run (`expected_output_accuracy`) the same model is applied to the input's own items: an accepted item
counts its calibrated posterior 1 - U (the learned consensus; measured within a point of the accepted items'
accuracy on the replayed GPT-4o benchmark) and a reviewed one r(U). The reviewer's answer is taken as the item's label (`--review-mode override`);
combine can only do better where the pool's posterior is informative, so the figure is the override's.
The reviewer alone is its accuracy on every probe item. Costs: the probe's spend per answered item times the items
reviewed (None when a price is unknown). These are point estimates from the probe's m items (standard error about
sqrt(r (1 - r) / m) on the reviewer's part) and the seed's n out-of-fold predictions, assuming both are drawn like
the input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

SHARES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def reviewer_accuracy_at(probe_u: np.ndarray, probe_reviewer_right: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """r(U): the reviewer's probability of being right at uncertainty U, a logistic regression (scikit-learn, L2 with
    C = 1) of (m,) "right" on (m,) U over the answered probe items; a constant, Laplace's (k + 1) / (m + 2), when the
    answers are all right or all wrong. Returns a function of an (n,) array of U giving (n,) probabilities."""
    u, right = np.asarray(probe_u, dtype=float), np.asarray(probe_reviewer_right, dtype=bool)
    if right.all() or not right.any():
        constant = (right.sum() + 1.0) / (len(right) + 2.0)
        return lambda x: np.full(len(np.atleast_1d(x)), constant)
    model = LogisticRegression(C=1.0).fit(u.reshape(-1, 1), right)
    return lambda x: model.predict_proba(np.asarray(x, dtype=float).reshape(-1, 1))[:, 1]


def expected_accuracy(
    share: float, seed_u: np.ndarray, seed_right: np.ndarray, probe_u: np.ndarray, probe_reviewer_right: np.ndarray
) -> float:
    """E[acc](share) of the module's model. `seed_u`, `seed_right`: (n,) the seed's out-of-fold U and whether the
    pool's label was right; `probe_u`, `probe_reviewer_right`: (m,) the answered probe items' U and whether the
    reviewer was right. Raises ValueError for a share outside [0, 1], mismatched shapes or an empty probe."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    seed_u, seed_right = np.asarray(seed_u, dtype=float), np.asarray(seed_right, dtype=bool)
    probe_u, right = np.asarray(probe_u, dtype=float), np.asarray(probe_reviewer_right, dtype=bool)
    if seed_u.shape != seed_right.shape or probe_u.shape != right.shape or not len(right) or not len(seed_u):
        raise ValueError("seed_u/seed_right and probe_u/probe_reviewer_right must be non-empty (n,) and (m,) pairs")
    n_reviewed = int(round(share * len(seed_u)))
    order = np.argsort(-seed_u, kind="stable")
    reviewed = np.zeros(len(seed_u), dtype=bool)
    reviewed[order[:n_reviewed]] = True
    pool_part = float(seed_right[~reviewed].sum()) / len(seed_u)
    if n_reviewed == 0:
        return pool_part
    in_region = float(reviewer_accuracy_at(probe_u, right)(seed_u[reviewed]).mean())
    return pool_part + n_reviewed / len(seed_u) * in_region


def expected_output_accuracy(accepted_u: np.ndarray, reviewed_u: np.ndarray, probe_u: np.ndarray, probe_reviewer_right: np.ndarray) -> float:
    """After the run: the output's expected accuracy from its own items, (n_a,) U of the items accepted by the learned
    consensus (each right with its calibrated posterior 1 - U) and (n_r,) U of the reviewed ones (each right with
    r(U), `reviewer_accuracy_at` on the probe's (m,) U and correctness). Raises ValueError when there is no item."""
    accepted_u, reviewed_u = np.asarray(accepted_u, dtype=float), np.asarray(reviewed_u, dtype=float)
    n = len(accepted_u) + len(reviewed_u)
    if not n:
        raise ValueError("no item to expect an accuracy of")
    reviewed = float(reviewer_accuracy_at(probe_u, probe_reviewer_right)(reviewed_u).sum()) if len(reviewed_u) else 0.0
    return (float((1.0 - accepted_u).sum()) + reviewed) / n


def reviewer_worth(
    seed_u: np.ndarray, seed_right: np.ndarray, probe_u: np.ndarray, probe_reviewer_right: np.ndarray, *, n_items: int,
    cost_per_review: float | None, chosen_share: float | None, shares: Sequence[float] = SHARES,
) -> dict:  # fmt: skip
    """The table the summary, `estimate` and the report show: for each share in `shares` the expected accuracy and the
    cost (USD, None: a price is unknown) of reviewing that share of `n_items`; the reviewer alone; the chosen setting
    (`chosen_share`: the --budget, or the share the run routed) and `alone_better`: the reviewer alone is expected to
    beat it. Arrays as `expected_accuracy`; `cost_per_review` in USD per reviewed item."""
    right = np.asarray(probe_reviewer_right, dtype=bool)

    def cost(share: float) -> float | None:
        return None if cost_per_review is None else round(cost_per_review * share * n_items, 4)

    rows = [{"share": s, "accuracy": round(expected_accuracy(s, seed_u, seed_right, probe_u, right), 4), "cost_usd": cost(s)} for s in shares]
    alone = round(float(right.mean()), 4)
    out = {"curve": rows, "reviewer_alone": {"accuracy": alone, "cost_usd": cost(1.0)}, "probe_items": int(len(right)),
           "seed_items": int(len(np.asarray(seed_u))), "model": "override at share s: pool on the accepted seed items + s x the reviewer's accuracy above U's cut"}  # fmt: skip
    if chosen_share is not None:
        expected = round(expected_accuracy(min(max(chosen_share, 0.0), 1.0), seed_u, seed_right, probe_u, right), 4)
        out["chosen"] = {"share": round(chosen_share, 4), "accuracy": expected, "cost_usd": cost(chosen_share)}
        out["alone_better"] = bool(alone > expected)
    return out
