"""benchmarks/replay_server.py answers the product's real OpenAI client with the recorded label of the item asked
about (texts with quotes, unicode and newlines too), sends a logprob distribution from the recorded confidence,
and refuses an unknown item with an HTTP 500 that it counts, never with a default label."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from autoannotator import Annotator, Task
from autoannotator.llm.logprobs import label_probs_from_logprobs
from autoannotator.llm.prompts import build_messages
from tests.conftest import ROOT

sys.path.append(str(ROOT / "benchmarks"))  # appended: benchmarks/math.py must not shadow the standard library
from replay_server import AnswerBook, ReplayServer, completion_body  # noqa: E402

TASK = Task.from_dict({"name": "stance", "labels": ["agrees", "disagrees", "neutral"]})
RECORDED = [
    ("Global warming is a hoax.", "disagrees", 1.0),
    ('He said "it is real"\nand left.', "agrees", 0.8),
    ("Les glaciers fondent — vite.", "neutral", 0.6),
    ("Global warming is a hoax. Not.", "agrees", 0.7),  # contains another recorded text
    ("Maybe.", "neutral", 0.1),  # a confidence below 1/3: the answer must stay the top label
]


def test_the_client_gets_each_items_recorded_label_and_an_unknown_item_a_counted_500(tmp_path: Path) -> None:
    book = AnswerBook.from_rows(RECORDED)
    with ReplayServer(book, model="gpt-4o") as server:
        options = {"base_url": server.base_url, "model": "gpt-4o", "max_retries": 0}
        frame = pd.DataFrame({"text": [t for t, _, _ in RECORDED] + ["never recorded"]})
        result = Annotator(TASK, mode="llm-only", reviewer="llm", reviewer_options=options, run_dir=tmp_path / "run").annotate(frame)
        stats = server.stats.snapshot()
    labels = result.frame.set_index("text")["label"]
    for text, label, _ in RECORDED:
        assert labels[text] == label
    assert pd.isna(labels["never recorded"])
    assert (stats["answered"], stats["failed"], stats["by_fallback"]) == (len(RECORDED), 1, 0)
    assert "never recorded" in stats["failures"][0]


def test_logprobs_carry_the_recorded_confidence_and_a_message_without_a_text_line_falls_back() -> None:
    book = AnswerBook.from_rows(RECORDED)
    messages = build_messages(TASK, RECORDED[1][0], style="zero-shot", json_answer=True)
    text, answer, by_fallback = book.find(messages)
    assert (text, answer.label, by_fallback) == (RECORDED[1][0], "agrees", False)
    request = {"model": "gpt-4o", "messages": messages, "logprobs": True, "top_logprobs": 5,
               "response_format": {"type": "json_schema", "json_schema": {"schema": {"properties": {"label": {"enum": TASK.label_names}}}}}}  # fmt: skip
    body = completion_body(request, book, text, answer, use_confidence=True)
    assert body["choices"][0]["message"]["content"] == '{"label": "agrees"}' and body["usage"]["prompt_tokens"] > 0
    probs = label_probs_from_logprobs(body, "agrees", TASK)
    assert abs(probs["agrees"] - 0.8) < 1e-4 and abs(probs["disagrees"] - 0.1) < 1e-4
    low = label_probs_from_logprobs(completion_body(request, book, "Maybe.", book.exact["Maybe."], use_confidence=True), "neutral", TASK)
    assert max(low, key=low.get) == "neutral"
    found = book.find([{"role": "user", "content": "Classify: Global warming is a hoax. Not. Thanks"}])
    assert found[0] == "Global warming is a hoax. Not." and found[2]  # the longest recorded text inside
    assert book.find([{"role": "user", "content": "Text: \"something else\""}]) is None
