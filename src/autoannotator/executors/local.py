"""The local executor: the specialist pool runs in this process, chunk by chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from autoannotator.scoring import ConsensusSettings, Scored, score
from autoannotator.specialists import Specialist


class Executor(Protocol):
    """Scores chunks of texts with the run's specialist pool.

    `rows` and `item_ids` name the items, `versions` the active version of each specialist
    ({name: version}): an executor that keeps results (Ray's blocks) reuses them only for the same
    items, texts and versions.
    """

    name: str

    def score(
        self, rows: list[int], texts: list[str], *, specialists: dict[str, Specialist], labels: list[str],
        settings: ConsensusSettings, run_dir: Path, seconds: dict[str, float], item_ids: list[str] | None = None,
        versions: dict[str, int] | None = None,
    ) -> list[Scored]: ...  # fmt: skip


class LocalExecutor:
    name = "local"

    def score(
        self, rows: list[int], texts: list[str], *, specialists: dict[str, Specialist], labels: list[str],
        settings: ConsensusSettings, run_dir: Path, seconds: dict[str, float], item_ids: list[str] | None = None,
        versions: dict[str, int] | None = None,
    ) -> list[Scored]:  # fmt: skip
        return score(specialists, labels, texts, settings, seconds)
