"""Map a model's own labels onto the task's: by name or alias, by embedding similarity, or by an LLM's
proposal (validated). A model label with no counterpart maps to None: the model abstains there."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

from autoannotator.task import Task

Encoder = Callable[[list[str]], np.ndarray]


def propose_label_map(
    model_labels: Sequence[str], task: Task, *, aliases: dict[str, str] | None = None, encode: Encoder | None = None,
    threshold: float = 0.45, margin: float = 0.1, llm: Callable[[str], str] | None = None,
) -> tuple[dict[str, str | None], dict[str, str]]:  # fmt: skip
    """(label_map, how each label was matched). Methods in order: name/alias, the catalog's label aliases,
    an LLM proposal (when given), embedding similarity (cosine >= threshold and ahead of the runner-up by
    `margin`). Embeddings place antonyms close (NEGATIVE is nearer 'positive' than 'negative' in MiniLM),
    which is why names and aliases go first and the map is written into the pipeline file for review."""
    mapping: dict[str, str | None] = {}
    how: dict[str, str] = {}
    for label in model_labels:
        resolved = task.resolve_label(label) or task.resolve_label((aliases or {}).get(label, ""))
        if resolved:
            mapping[label], how[label] = resolved, "name or alias"
    rest = [label for label in model_labels if label not in mapping]
    if rest and llm is not None:
        for label, target in _llm_proposal(rest, task, llm).items():
            mapping[label], how[label] = target, "LLM proposal"
        rest = [label for label in rest if label not in mapping]
    if rest and encode is not None:
        described = [f"{lab.name}: {lab.description}" if lab.description else lab.name for lab in task.labels]
        vectors = encode([*rest, *described])
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        similarity = vectors[: len(rest)] @ vectors[len(rest) :].T
        for i, label in enumerate(rest):
            order = np.argsort(-similarity[i])
            best, second = similarity[i, order[0]], similarity[i, order[1]] if len(order) > 1 else -1.0
            if best >= threshold and best - second >= margin:
                mapping[label], how[label] = task.label_names[order[0]], f"embedding similarity {best:.2f}"
    for label in model_labels:
        if label not in mapping:
            mapping[label], how[label] = None, "no counterpart: the model abstains on items it gives this label"
    return mapping, how


def _llm_proposal(model_labels: list[str], task: Task, llm: Callable[[str], str]) -> dict[str, str]:
    """Ask the LLM for a JSON mapping; keep only answers that name a task label."""
    prompt = (
        f"A classifier outputs the labels {model_labels}. The task's labels are "
        + "; ".join(f"{lab.name} ({lab.description})" for lab in task.labels)
        + '. Map each classifier label to the task label with the same meaning, or null if none. Answer JSON only: {"<classifier label>": "<task label or null>"}'
    )
    try:
        answer = json.loads(llm(prompt))
    except (json.JSONDecodeError, TypeError):
        return {}
    if not isinstance(answer, dict):
        return {}
    return {k: task.resolve_label(v) for k, v in answer.items() if k in model_labels and task.resolve_label(v)}
