"""Why an item stayed unresolved: the values of the output's `reason` column and the summary's counts.

A reviewer that gives no label says why in `Answer.reason`; the pipeline logs it with the answer, and the
output reads back the newest logged reason of each unresolved item. Items that never reached a reviewer get
theirs from their state (`empty_text`) or from the run (`no_reviewer`, `awaiting_review`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

REASONS: dict[str, str] = {
    "empty_text": "the text is empty or missing: never sent to the specialists or a reviewer",
    "options_unparsed": "a multiple-choice item whose options are not a list or an 'A) … B) …' string: never guessed",
    "no_reviewer": "a hard item and the run has no reviewer (--reviewer none)",
    "awaiting_review": "a hard item still waiting for a reviewer's answer (human review, export, double review)",
    "out_of_set": "the reviewer's answer was not a task label, also after the re-asks",
    "gold_missing": "the gold reviewer's column is empty for this item",
    "http_400": "the LLM server refused this item's request (HTTP 400: text over the context, content filter, ...)",
    "http_413": "the LLM server refused this item's request as too large (HTTP 413)",
    "http_422": "the LLM server could not process this item's request (HTTP 422)",
    "budget": "the LLM was not asked: the next request could have passed --max-cost or --max-llm-calls (rerun with a higher cap)",
    "retries_exhausted": "the LLM request still failed (429, 5xx, timeouts, bad bodies) after --llm-max-retries",
}


def unresolved_reason(state: str, logged: str | None, *, has_reviewer: bool) -> str:
    """The reason of one unresolved item from its store `state` and the reason logged with its newest answer."""
    if state == "skipped":
        return "empty_text"
    if logged:
        return logged
    return "awaiting_review" if has_reviewer else "no_reviewer"


def count_reasons(reasons: Iterable[str | None]) -> dict[str, int]:
    """Unresolved items per reason, most frequent first (None and NaN, i.e. labeled items, are skipped)."""
    counts = Counter(r for r in reasons if isinstance(r, str))
    return dict(counts.most_common())
