"""The secondary-review interface: a reviewer answers hard items with a task label or None (unresolved)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from autoannotator.errors import AnnotatorError
from autoannotator.store import RunStore
from autoannotator.task import Example, Task

_REGISTRY: dict[str, Callable[..., Reviewer]] = {}
IDENTITY_FIELDS = ("model", "base_url", "prompt", "shots", "structured", "temperature", "samples")  # settings that change answers


@dataclass(frozen=True)
class ReviewItem:
    """A hard item as a reviewer sees it: its text, the specialists' votes and its whole input record."""

    row: int
    item_id: str
    text: str
    votes: dict[str, dict[str, Any]]
    consensus_label: str | None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """A reviewer's answer: a task label or None (unresolved), with its probabilities over the labels if known.
    Without a label, `reason` says why (a short snake_case word of `autoannotator.reasons.REASONS`)."""

    label: str | None
    probs: dict[str, float] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


class Reviewer(ABC):
    """Answers hard items. `source` is what the output's `label_source` says for its answers."""

    source: ClassVar[str]
    saves_own_answers: ClassVar[bool] = False  # True: it writes each answer to the store as it is given
    examples: Sequence[Example] = ()  # the labeled examples it shows in its prompts (the reviewer probe never asks about them)

    def __init__(self, task: Task) -> None:
        self.task = task

    def attach(self, store: RunStore) -> None:
        """Called with the run store before reviewing; reviewers that cache or account use it."""

    def check_ready(self) -> None:
        """Called before a run pays for anything; raises AnnotatorError when this reviewer cannot answer here."""

    def use_examples(self, examples: Sequence[Example]) -> None:
        """Labeled examples (from the seed file) that few-shot reviewers may put in their prompts."""

    def identity(self) -> dict[str, Any]:
        """Who answers: what a measurement of this reviewer (the probe's confusion) belongs to. The reviewer's kind and
        source, the settings that change its answers where it has them (model, base URL, prompt style, shots,
        structured output, temperature, samples; never an API key), and its few-shot examples."""
        settings = getattr(self, "settings", None)
        fields = {name: getattr(settings, name) for name in IDENTITY_FIELDS if hasattr(settings, name)}
        own = {name: getattr(self, attr) for name, attr in (("model", "model_name"), ("shots", "n_shots")) if hasattr(self, attr)}
        return {"kind": type(self).__name__, "source": self.source} | own | fields | {
            "examples": [[e.text, e.label] for e in self.examples]}  # fmt: skip

    def answer_probe(self, items: Sequence[ReviewItem]) -> list[Answer]:
        """Answers for the reviewer probe's seed items (rows < 0, not run items): `review`'s, for a reviewer that
        does not save its own answers into the run store."""
        return self.review(items)

    @abstractmethod
    def review(self, items: Sequence[ReviewItem]) -> list[Answer]:
        """One answer per item, in order; `Answer(None)` where the reviewer gives no valid label."""


def register(name: str) -> Callable[[Callable[..., Reviewer]], Callable[..., Reviewer]]:
    """Register a reviewer factory `factory(task, argument, options)` under `name`."""

    def wrap(factory: Callable[..., Reviewer]) -> Callable[..., Reviewer]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def create_reviewer(spec: str | None, task: Task, options: dict[str, Any] | None = None) -> Reviewer | None:
    """Build a reviewer from 'none', 'gold:COLUMN', 'llm', 'human' or another registered 'name[:argument]'."""
    from autoannotator.reviewers import factories  # noqa: F401  (registers the built-in kinds)

    spec = (spec or "none").strip()
    name, _, argument = spec.partition(":")
    if name == "none":
        return None
    if name not in _REGISTRY:
        raise AnnotatorError(f"unknown reviewer '{name}' (known: none, {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name](task, argument or None, options or {})
