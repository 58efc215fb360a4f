"""Multiple-choice items: parse an options cell (a list, or an `A) … B) …` string) and render the item text.

The rendered text (question, a blank line, `Options:` and one `X) option` line each) is what specialists,
reviewers and the run store see; `split_item` reads it back, so an LLM specialist can match an answer's
option text to its letter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

LETTERS = "ABCDEFGHIJ"
_HEADER = "\n\nOptions:\n"
_MARKER = re.compile(r"(?:^|(?<=\s))\(?([A-Z])\)\s*")
_LIST_MARKER = re.compile(r"^\s*\(?([A-Z])\)\s*")


class OptionsError(ValueError):
    """An options cell that cannot be read as lettered options; the item stays unresolved (`options_unparsed`)."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _from_list(values: Sequence[object]) -> list[str]:
    """Plain option texts get letters in order; texts that carry their own `A)` markers must carry them all, in order."""
    texts = [one_line(v) for v in values]
    markers = [_LIST_MARKER.match(t) for t in texts]
    if any(markers):
        if not all(markers) or [m.group(1) for m in markers] != list(LETTERS[: len(texts)]):
            raise OptionsError(f"option markers are not A, B, C, … in order: {texts[:6]}")
        texts = [t[m.end() :].strip() for t, m in zip(texts, markers)]
    return texts


def _from_string(value: str) -> list[str]:
    text = value.strip()
    if text.startswith("["):
        try:
            listed = json.loads(text)
        except json.JSONDecodeError:
            listed = None
        if isinstance(listed, list):
            return _from_list(listed)
    markers = list(_MARKER.finditer(text))
    if not markers or markers[0].start() != 0:
        raise OptionsError(f"options do not start with 'A)': {text[:60]!r}")
    letters = [m.group(1) for m in markers]
    if letters != list(LETTERS[: len(letters)]):
        raise OptionsError(f"option markers are not A, B, C, … in order: {''.join(letters)}")
    ends = [m.start() for m in markers[1:]] + [len(text)]
    return [one_line(text[m.end() : end]) for m, end in zip(markers, ends)]


def parse_options(value: object) -> list[str]:
    """The option texts of one item, in letter order (A first).

    `value` is a list of texts (plain, or each starting with its `A)` marker), a JSON list in a string, or one
    string `A) … B) …` (markers `A)` or `(A)`, separated by whitespace). Raises OptionsError when there are
    fewer than two options, more than ten, an empty option, or markers out of order.
    """
    if value is None or (isinstance(value, float) and value != value):
        raise OptionsError("no options")
    if isinstance(value, str):
        options = _from_string(value)
    elif isinstance(value, Sequence) or hasattr(value, "tolist"):
        options = _from_list(list(value.tolist() if hasattr(value, "tolist") else value))
    else:
        raise OptionsError(f"options must be a list or an 'A) … B) …' string, got {type(value).__name__}")
    if len(options) < 2:
        raise OptionsError(f"needs at least two options, found {len(options)}")
    if len(options) > len(LETTERS):
        raise OptionsError(f"at most {len(LETTERS)} options, found {len(options)}")
    if any(not o for o in options):
        raise OptionsError("an option is empty")
    return options


def render_item(question: str, options: Sequence[str]) -> str:
    """The item text: the question, then `Options:` and one `X) option` line each."""
    lines = [f"{LETTERS[i]}) {option}" for i, option in enumerate(options)]
    return question.strip() + _HEADER + "\n".join(lines)


def split_item(text: str) -> tuple[str, list[str]]:
    """(question, option texts) of a text made by `render_item`; raises OptionsError for any other text."""
    question, header, block = text.rpartition(_HEADER)
    if not header:
        raise OptionsError("not a multiple-choice item (no 'Options:' block)")
    return question, _from_list(block.splitlines())
