"""The secondary-review interface: a reviewer answers hard items with a task label or None (unresolved)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from autoannotator.errors import AnnotatorError
from autoannotator.task import Task

_REGISTRY: dict[str, Callable[..., Reviewer]] = {}


@dataclass(frozen=True)
class ReviewItem:
    """A hard item as a reviewer sees it: its text, the specialists' votes and its whole input record."""

    row: int
    item_id: str
    text: str
    votes: dict[str, dict[str, Any]]
    consensus_label: str | None
    record: dict[str, Any] = field(default_factory=dict)


class Reviewer(ABC):
    """Answers hard items. `source` is what the output's `label_source` says for its answers."""

    source: ClassVar[str]

    def __init__(self, task: Task) -> None:
        self.task = task

    @abstractmethod
    def review(self, items: Sequence[ReviewItem]) -> list[str | None]:
        """One task label per item, or None where the reviewer gives no valid answer."""


def register(name: str) -> Callable[[type[Reviewer]], type[Reviewer]]:
    def wrap(cls: type[Reviewer]) -> type[Reviewer]:
        _REGISTRY[name] = cls
        return cls

    return wrap


def create_reviewer(spec: str | None, task: Task) -> Reviewer | None:
    """Build a reviewer from 'none', 'gold:COLUMN' or another registered 'name[:argument]'; None for 'none'."""
    from autoannotator.reviewers import gold  # noqa: F401  (registers the built-in kinds)

    spec = (spec or "none").strip()
    name, _, argument = spec.partition(":")
    if name == "none":
        return None
    if name not in _REGISTRY:
        raise AnnotatorError(f"unknown reviewer '{name}' (known: none, {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name](task, argument) if argument else _REGISTRY[name](task)
