"""The label distribution hidden in a chat answer's logprobs, where the server returns them."""

from __future__ import annotations

import math

from autoannotator.task import Task, normalize_label_name


def label_probs_from_logprobs(response: dict, label: str, task: Task) -> dict[str, float] | None:
    """At the token where the chosen label starts, share the top alternatives' probability among the labels
    they begin (by name or alias); None when the server sent no logprobs or nothing matches."""
    choice = response["choices"][0]
    tokens = ((choice.get("logprobs") or {}).get("content")) or []
    content = (choice.get("message") or {}).get("content") or ""
    if not tokens:
        return None
    start = content.lower().rfind(label.lower())
    if start < 0:
        return None
    offset = 0
    for token in tokens:
        if offset + len(token["token"]) > start:
            break
        offset += len(token["token"])
    else:
        return None
    spellings = {name: [normalize_label_name(s) for s in [name, *lab.aliases]] for name, lab in zip(task.label_names, task.labels)}
    mass = dict.fromkeys(task.label_names, 0.0)
    for alternative in token.get("top_logprobs") or [{"token": token["token"], "logprob": token["logprob"]}]:
        piece = alternative["token"].strip().lower()
        if not piece:
            continue
        owners = [name for name, forms in spellings.items() if any(form.startswith(piece) for form in forms)]
        if len(owners) == 1:
            mass[owners[0]] += math.exp(alternative["logprob"])
    total = sum(mass.values())
    return {name: round(p / total, 6) for name, p in mass.items()} if total > 0 else None
