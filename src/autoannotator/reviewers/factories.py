"""Builds the built-in reviewers from a '--reviewer' spec and the LLM options."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from autoannotator.errors import AnnotatorError
from autoannotator.llm.local_models import is_embedded as embedded_model
from autoannotator.reviewers.base import Reviewer, register
from autoannotator.reviewers.gold import GoldReviewer
from autoannotator.task import Task, format_validation_error


@register("gold")
def gold(task: Task, column: str | None, options: dict[str, Any]) -> Reviewer:
    return GoldReviewer(task, column)


def is_embedded(options: dict[str, Any]) -> bool:
    """No server given and the model is an embedded name, a .gguf file, or left out."""
    return embedded_model(options.get("base_url"), options.get("model"))


@register("llm")
def llm(task: Task, argument: str | None, options: dict[str, Any]) -> Reviewer:
    """The embedded local model when no server is named, else the OpenAI-compatible client."""
    options = {k: v for k, v in options.items() if v is not None}
    if argument:
        options["model"] = argument
    if is_embedded(options):
        from autoannotator.reviewers.local_llm import LocalLLMReviewer

        unsupported = set(options) - {"model", "shots"}
        if unsupported:
            raise AnnotatorError(f"the embedded LLM takes no {sorted(unsupported)}: those options (flags --max-cost, --max-llm-calls, "
                                 "--llm-samples and the server's --llm-* settings) are for --llm-base-url servers; the embedded "
                                 "model runs in-process and costs nothing")
        return LocalLLMReviewer(task, **options)
    from autoannotator.reviewers.llm import LLMReviewer, LLMSettings

    try:
        settings = LLMSettings(**options)
    except ValidationError as exc:
        raise AnnotatorError(f"LLM settings: {format_validation_error(exc)}") from None
    return LLMReviewer(task, settings)


@register("human")
def human(task: Task, argument: str | None, options: dict[str, Any]) -> Reviewer:
    from autoannotator.reviewers.human import TerminalReviewer

    return TerminalReviewer(task)
