"""Scoring a batch of texts with the specialist pool: probabilities, consensus, and each item's route.
Shared by the executors (the local loop and Ray actors)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from autoannotator.consensus import ConsensusResult, Rule, decide
from autoannotator.specialists import Specialist
from autoannotator.stacking import Aggregator

DRIVER_ROUTES = math.inf  # epsilon when the driver routes (a whole-run budget): scoring marks only items without a label hard


@dataclass(frozen=True)
class ConsensusSettings:
    """How a batch is decided: the rule, its threshold (a review budget is routed by the driver over the whole
    run, see `autoannotator.budget`), and the learned rule's aggregator."""

    rule: Rule = "vote"
    epsilon: float | None = None
    aggregator: Aggregator | None = None

    def wire(self) -> dict:
        """A plain form for Ray actors and block keys: the aggregator is named by its saved folder."""
        return {"rule": self.rule, "epsilon": self.epsilon, "aggregator": str(self.aggregator.folder) if self.aggregator else None}

    @classmethod
    def from_wire(cls, wire: dict) -> ConsensusSettings:
        """Back from `wire()`, loading the aggregator from its folder."""
        return cls(wire["rule"], wire["epsilon"], Aggregator.load(wire["aggregator"]) if wire["aggregator"] else None)


@dataclass(frozen=True)
class Scored:
    """One item's outcome in the specialist layer."""

    hard: bool
    consensus_label: str | None
    uncertainty: float
    votes: dict[str, dict]
    unanimous: bool = False  # every specialist voted, all for the same label (under any rule)
    posterior: tuple[float, ...] = ()  # (n_labels,) the pool's probabilities: the learned aggregator's, else the voters' mean


def votes_of(
    result: ConsensusResult, probs: np.ndarray, j: int, names: list[str], labels: list[str], details: Sequence[Sequence[dict]] = ()
) -> dict[str, dict]:
    """Item j's provenance: each specialist's label (None: abstained) and its top probability, plus what the
    specialist adds about the item (`details[s][j]`: an LLM's answer, or the reason it abstained)."""
    return {
        name: {"label": None if result.votes[s, j] < 0 else labels[result.votes[s, j]], "p": round(float(probs[s, j].max()), 4)}
        | (details[s][j] if details else {})
        for s, name in enumerate(names)
    }


def score(
    specialists: Mapping[str, Specialist], labels: list[str], texts: Sequence[str], settings: ConsensusSettings,
    seconds: dict[str, float] | None = None,
) -> list[Scored]:  # fmt: skip
    """Run every specialist on `texts` (non-empty) and decide each item by consensus."""
    seconds = seconds if seconds is not None else {}
    probs, details = [], []
    for name, specialist in specialists.items():
        started = time.perf_counter()
        specialist_probs, specialist_details = specialist.predict_with_details(list(texts))
        probs.append(specialist_probs)
        details.append(specialist_details)
        seconds[f"predict:{name}"] = seconds.get(f"predict:{name}", 0.0) + time.perf_counter() - started
    started = time.perf_counter()
    stacked = np.stack(probs)
    result = decide(stacked, rule=settings.rule, epsilon=settings.epsilon, aggregator=settings.aggregator)
    names = list(specialists)
    out = []
    for j in range(len(texts)):
        column = result.votes[:, j]
        majority = labels[result.labels[j]] if column.max() >= 0 else None
        out.append(Scored(hard=bool(result.hard[j]) or majority is None, consensus_label=majority,
                          uncertainty=round(float(result.uncertainty[j]), 6), votes=votes_of(result, stacked, j, names, labels, details),
                          unanimous=bool(column.min() >= 0 and (column == column[0]).all()),
                          posterior=tuple(round(float(p), 6) for p in result.mean_probs[j])))  # fmt: skip
    seconds["consensus"] = seconds.get("consensus", 0.0) + time.perf_counter() - started
    return out
