"""A review budget for the whole run: `--budget F` sends F of all input items to review, not F of each chunk.

Chunks arrive one at a time, so the threshold on U is set from a reference distribution of U: the seed's
out-of-fold U (rule 'learned') plus every U the run has scored so far, this chunk included (so with no seed
the first chunk is its own reference). Each chunk routes the share of the budget still left over the items
still to come, taken as the matching upper quantile of that reference; ties at the threshold are split in
proportion. Two bounds keep the end result within one item of F * n_items: a chunk never spends more than the
budget left, and never less than what the remaining chunks could still make up. Everything the controller
needs (items done, items routed, their U) is in the run store, so a resumed run continues the same budget.
Items no specialist labeled go to review whatever the budget, and items with U = 0 never do.
"""

from __future__ import annotations

import numpy as np


def routing_probability(uncertainty: np.ndarray, reference: np.ndarray, share: float) -> np.ndarray:
    """(n,) chance each item falls in the top `share` of `reference` (a sample of U): 1 above the threshold,
    0 below, and for ties at the threshold the part of their mass the share still covers."""
    if share <= 0 or len(reference) == 0:
        return np.zeros(len(uncertainty))
    reference = np.sort(reference)
    above = 1.0 - np.searchsorted(reference, uncertainty, side="right") / len(reference)
    equal = (np.searchsorted(reference, uncertainty, side="right") - np.searchsorted(reference, uncertainty, side="left")) / len(reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(equal > 0, (share - above) / equal, (above < share).astype(float))
    return np.clip(fraction, 0.0, 1.0)


def budget_route(
    uncertainty: np.ndarray, forced: np.ndarray, *, fraction: float, n_items: int, done_before: int, routed_before: int,
    reference: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(n,) bool: which items of this chunk go to review.

    `uncertainty` (n,) U of the chunk's scored items; `forced` (n,) items that must be reviewed (no label);
    `fraction` F of `n_items` (every input item); `done_before` / `routed_before` items stored before this
    chunk / of those, sent to review; `reference` U seen before (seed out-of-fold U and earlier chunks).
    """
    n = len(uncertainty)
    target = round(fraction * n_items)
    left = max(target - routed_before, 0)
    to_come = max(n_items - done_before, n)
    share = left / to_come
    wanted = round(float(routing_probability(uncertainty, np.concatenate([reference, uncertainty]), share).sum()))
    lowest = max(0, left - (to_come - n))  # what the chunks after this one could no longer make up
    n_routed = min(max(wanted, lowest), left)
    hard = forced.copy()
    spare = n_routed - int(forced.sum())
    if spare > 0:
        candidates = np.flatnonzero(~forced & (uncertainty > 1e-12))
        order = candidates[np.argsort(-uncertainty[candidates], kind="stable")][: spare]
        hard[order] = True
    return hard
