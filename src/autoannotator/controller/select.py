"""Rank the catalog for a task (paper eq. 1): cosine similarity between the embedded task profile and the
embedded model descriptions, or LogME on a labeled sample; top-k with a diversity rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from autoannotator.controller.catalog import CatalogEntry
from autoannotator.controller.label_map import Encoder, propose_label_map
from autoannotator.controller.logme import logme
from autoannotator.errors import AnnotatorError
from autoannotator.specialists import LabelMapping
from autoannotator.task import Task

Method = Literal["similarity", "logme"]


def template_profile(task: Task) -> str:
    """A task profile from the task file alone (used when no LLM writes one)."""
    labels = "; ".join(f"{lab.name}: {lab.description}" if lab.description else lab.name for lab in task.labels)
    return f"Text classification ({task.name.replace('-', ' ')}). {task.instruction} Labels: {labels}".strip()


@dataclass
class Candidate:
    """A catalog entry judged for the task: its score, the label map it would use, and why."""

    entry: CatalogEntry
    score: float = float("nan")
    label_map: dict[str, str | None] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    excluded: str | None = None


def judge(entry: CatalogEntry, task: Task, *, encode: Encoder, has_seed: bool, offline: bool,
          llm: Callable[[str], str] | None) -> Candidate:  # fmt: skip
    """Can this entry serve the task here? Trainable kinds need a seed; pretrained ones need labels that map."""
    candidate = Candidate(entry)
    if offline and not entry.offline:
        candidate.excluded = "needs a download (offline)"
    elif entry.trainable and not has_seed:
        candidate.excluded = "must be trained: give labeled data (--seed)"
    elif not entry.trainable:
        candidate.label_map, candidate.how = propose_label_map(entry.labels, task, aliases=entry.label_aliases, encode=encode, llm=llm)
        try:
            LabelMapping(entry.labels, task, candidate.label_map)
        except AnnotatorError as exc:
            candidate.excluded = f"labels do not fit the task: {exc}"
    return candidate


def diverse_top_k(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """The k best by score, at most one per model family (not k variants of one model)."""
    chosen, families = [], set()
    for candidate in sorted(candidates, key=lambda c: -c.score):
        family = candidate.entry.family or candidate.entry.id
        if family in families:
            continue
        chosen.append(candidate)
        families.add(family)
        if len(chosen) == k:
            break
    return chosen


def similarity_scores(profile: str, entries: Sequence[CatalogEntry], encode: Encoder) -> np.ndarray:
    vectors = encode([profile, *[e.description for e in entries]])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors[1:] @ vectors[0]


def logme_scores(entries: Sequence[CatalogEntry], task: Task, texts: list[str], labels: list[str],
                 features: Callable[[CatalogEntry, list[str]], np.ndarray | None]) -> np.ndarray:  # fmt: skip
    """LogME of each entry's features on the labeled sample (NaN where no features can be had)."""
    targets = np.array([task.label_names.index(y) for y in labels])
    scores = []
    for entry in entries:
        matrix = features(entry, texts)
        scores.append(float("nan") if matrix is None else logme(matrix, targets))
    return np.array(scores)


def rank(
    task: Task, entries: Sequence[CatalogEntry], *, k: int, encode: Encoder, profile: str | None = None,
    method: Method = "similarity", sample: tuple[list[str], list[str]] | None = None, has_seed: bool = False,
    offline: bool = True, features: Callable[[CatalogEntry, list[str]], np.ndarray | None] | None = None,
    llm: Callable[[str], str] | None = None,
) -> tuple[list[Candidate], list[Candidate]]:  # fmt: skip
    """(chosen, all judged). Ranks the usable entries by `method` and keeps a diverse top-k."""
    judged = [judge(e, task, encode=encode, has_seed=has_seed, offline=offline, llm=llm) for e in entries]
    usable = [c for c in judged if c.excluded is None]
    if not usable:
        raise AnnotatorError("no catalog model can serve this task here: give a seed file, add model folders, or go online")
    if method == "logme":
        if sample is None or features is None:
            raise AnnotatorError("LogME ranking needs a labeled sample (--sample with a label column)")
        scores = logme_scores([c.entry for c in usable], task, *sample, features)
    else:
        scores = similarity_scores(profile or template_profile(task), [c.entry for c in usable], encode)
    for candidate, score in zip(usable, scores):
        candidate.score = float(score) if np.isfinite(score) else -np.inf
    return diverse_top_k(usable, k), judged
