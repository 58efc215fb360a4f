"""Expert-guided iterative refinement (paper §3.2): when β reviewed hard items have piled up, fine-tune
every specialist on them, and swap a refined model in only if it is not worse on a held-out gate.

Beyond the paper, against forgetting and bad rounds: replay (the pool is mixed with earlier reviewed
items, seed items and unanimous consensus items), a gate (part of each pool is set aside for good and
every candidate is scored on it before and after), and versions (every candidate saved and recorded;
rejected ones too; a command rolls back).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from autoannotator.specialists import Specialist
from autoannotator.store import ItemRecord, RunStore


RESCORE_KEY = "rescore_after_row"  # meta key: a promotion's re-scoring is under way, done up to this row


class RefineSettings(BaseModel):
    """When a round starts and what it trains on."""

    model_config = ConfigDict(extra="forbid")

    beta: int = Field(2000, ge=1, description="reviewed hard items that trigger a round (paper: 2,000)")
    replay: float = Field(0.5, ge=0, description="earlier reviewed and seed items mixed in, as a fraction of the pool")
    replay_consensus: float = Field(0.25, ge=0, description="unanimous consensus items mixed in, as a fraction of the pool")
    gate_fraction: float = Field(0.2, ge=0, lt=1, description="share of each pool kept aside to judge candidates")
    min_gate: int = Field(20, ge=0)
    rescore_below: float | None = Field(None, gt=0, le=1, description="after a promotion, re-score consensus items less confident than this")
    seed: int = 0


@dataclass
class Labeled:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def of(cls, records: Sequence[ItemRecord]) -> Labeled:
        return cls([r.text for r in records], [r.label for r in records])

    def sample(self, n: int, rng: np.random.Generator) -> Labeled:
        index = sample_indices(len(self), n, rng)
        return Labeled([self.texts[i] for i in index], [self.labels[i] for i in index])

    def __add__(self, other: Labeled) -> Labeled:
        return Labeled(self.texts + other.texts, self.labels + other.labels)


def sample_indices(size: int, n: int, rng: np.random.Generator) -> Sequence[int]:
    """`n` of the indices 0..size-1 drawn without replacement (all of them when n >= size, none when n <= 0)."""
    if n >= size:
        return range(size)
    return [] if n <= 0 else rng.choice(size, size=n, replace=False).tolist()


def gate_accuracy(specialist: Specialist, gate: Labeled) -> float:
    """Accuracy of the specialist's top label on the gate items (abstentions count as wrong)."""
    if not len(gate):
        return float("nan")
    probs = specialist.predict_proba(gate.texts)
    names = specialist.task.label_names
    predicted = [names[i] if row.sum() > 0 else None for i, row in zip(probs.argmax(axis=1), probs)]
    return float(np.mean([p == y for p, y in zip(predicted, gate.labels)]))


@dataclass
class CandidateResult:
    candidate: Specialist
    before: float
    after: float
    promoted: bool
    seconds: float


def refine_specialist(specialist: Specialist, train: Labeled, gate: Labeled, folder: Path) -> CandidateResult:
    """Train a candidate from `specialist` on `train`, saved in `folder`; promote it only if it is not worse
    on the gate (ties and an empty gate promote)."""
    started = time.perf_counter()
    candidate = specialist.refined(train.texts, train.labels, folder)
    seconds = time.perf_counter() - started
    before, after = gate_accuracy(specialist, gate), gate_accuracy(candidate, gate)
    promoted = not len(gate) or after >= before - 1e-12
    return CandidateResult(candidate=candidate, before=before, after=after, promoted=promoted, seconds=seconds)


@dataclass
class RoundReport:
    """One round: `pool_size` reviewed items (of which `gate_size` set aside for the gate), `train_size` the
    items it trained on (the largest of its specialists' training sets; each one's own is in `specialists`)."""

    number: int
    pool_size: int
    gate_size: int
    train_size: int
    seconds: float
    specialists: dict[str, dict]


class Refiner:
    """Runs refinement rounds for one run: decides when, builds the training mix, gates and records."""

    def __init__(self, settings: RefineSettings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir

    def due(self, store: RunStore) -> bool:
        return store.count_reviewed_unused() >= self.settings.beta

    def run_round(self, store: RunStore, pool: dict[str, Specialist], seed: Labeled | None) -> RoundReport:
        """One round over the unused reviewed items; promoted candidates replace their specialists in `pool`."""
        started = time.perf_counter()
        s = self.settings
        new = store.labeled_by_review(used=False)
        rng = np.random.default_rng(s.seed + len(store.rounds()))
        order = rng.permutation(len(new))
        n_gate = min(len(new) // 2, max(s.min_gate, round(s.gate_fraction * len(new)))) if s.gate_fraction > 0 else 0
        gate_new, pool_new = [new[i] for i in order[:n_gate]], [new[i] for i in order[n_gate:]]
        gate = Labeled.of(store.labeled_by_review(gate=True) + gate_new)
        earlier = Labeled.of(store.labeled_by_review(used=True)) + (seed or Labeled([], []))
        fresh = Labeled.of(pool_new)
        unanimous = store.unanimous_rows()  # rows only: the records of the sample alone are read
        picked = sample_indices(len(unanimous), round(s.replay_consensus * len(fresh)), rng)
        confident = Labeled.of(store.by_rows([unanimous[i] for i in picked]))  # one consensus sample for both mixes
        incremental = fresh + earlier.sample(round(s.replay * len(fresh)), rng) + confident
        everything = fresh + earlier + confident
        versions, report = [], {}
        for name, specialist in pool.items():
            if not specialist.trainable:
                continue
            version = store.next_version(name)
            relative = Path("specialists") / name / f"v{version}"
            train = everything if specialist.refits_from_scratch else incremental
            result = refine_specialist(specialist, train, gate, self.run_dir / relative)
            versions.append({"name": name, "kind": specialist.kind, "version": version, "path": str(relative),
                             "promoted": result.promoted, "gate_before": result.before, "gate_after": result.after,
                             "train_size": len(train), "seconds": round(result.seconds, 3)})  # fmt: skip
            report[name] = versions[-1]
            if result.promoted:
                pool[name] = result.candidate
        seconds = time.perf_counter() - started
        # The items the round trained on: the incremental mix is part of the refit kinds' set, so the largest set.
        train_size = max((v["train_size"] for v in versions), default=0)
        rescore = s.rescore_below is not None and any(v["promoted"] for v in versions)
        number = store.commit_round(
            pool_rows=[r.row for r in pool_new], gate_rows=[r.row for r in gate_new],
            train_size=train_size, seconds=seconds, versions=versions, meta={RESCORE_KEY: "-1"} if rescore else None,
        )  # fmt: skip
        return RoundReport(number=number, pool_size=len(new), gate_size=len(gate_new), train_size=train_size,
                           seconds=seconds, specialists=report)  # fmt: skip
