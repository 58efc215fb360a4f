"""Live search of the Hugging Face Hub for text-classification models that fit a task."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from autoannotator.controller.catalog import CatalogEntry, first_paragraph
from autoannotator.errors import AnnotatorError


def reachable(endpoint: str, *, timeout: float) -> None:
    """Fail fast (one TCP connect) when the Hub cannot be reached, instead of waiting on HTTP retries."""
    parts = urlsplit(endpoint)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)), timeout=timeout).close()
    except OSError as exc:
        raise AnnotatorError(f"the Hub at {endpoint} is not reachable ({type(exc).__name__}): using the curated catalog") from None


def _fetch(endpoint: str, repo_id: str, filename: str, timeout: float) -> str | None:
    """A file of a model repo as text, or None when it is missing."""
    from huggingface_hub import get_session

    response = get_session().get(f"{endpoint}/{repo_id}/resolve/main/{filename}", timeout=timeout, follow_redirects=True)
    return response.text if response.status_code == 200 else None


def search_hub(query: str, *, endpoint: str | None = None, limit: int = 20, timeout: float = 10.0) -> list[CatalogEntry]:
    """Text-classification models matching `query`, most downloaded first, with their id2label and card text.

    Models without an id2label in their config.json, or whose labels are generic (LABEL_0 ...), are left out:
    their labels could not be mapped onto the task's."""
    from huggingface_hub import HfApi, constants

    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    reachable(endpoint, timeout=min(timeout, 3.0))
    try:
        models = list(HfApi(endpoint=endpoint).list_models(
            pipeline_tag="text-classification", search=query, sort="downloads", limit=limit, cardData=True))  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any network or HTTP failure means: no live search now
        raise AnnotatorError(f"Hub search failed ({type(exc).__name__}): use the curated catalog (--offline)") from None
    entries = []
    for model in models:
        config_text = _fetch(endpoint, model.id, "config.json", timeout)
        if not config_text:
            continue
        id2label = json.loads(config_text).get("id2label") or {}
        labels = [id2label[k] for k in sorted(id2label, key=int)]
        if not labels or all(label.upper().startswith("LABEL_") for label in labels):
            continue
        card = model.card_data.to_dict() if model.card_data else {}
        readme = _fetch(endpoint, model.id, "README.md", timeout) or ""
        language = card.get("language") or "unknown"
        entries.append(CatalogEntry(
            id=model.id, kind="hf", family=model.id.split("/")[-1].split("-")[0], labels=labels, source="hub",
            description=first_paragraph(readme) or f"{model.id}: text classification with labels {', '.join(labels)}",
            task_type="unknown", language=language if isinstance(language, str) else ",".join(language),
            license=str(card.get("license", "unknown")), downloads=model.downloads,
        ))  # fmt: skip
    return entries
