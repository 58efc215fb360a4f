"""A local OpenAI-compatible server that replays an LLM's recorded answers (benchmarks/real_llm.py's GPT-4o).

It answers `POST /v1/chat/completions` with the recorded label of the item whose text the request asks about,
as the product's real client path (`llm.client.ChatClient`) expects it: `{"label": "..."}` as the content when
the request has a `response_format` (json_schema or json_object), the bare label otherwise; `usage` tokens
(the product's own counter for the model, else 4 characters a token); and, when the request asks for
`logprobs`, a distribution at the label's token built from the recorded confidence (the label gets it, the
other labels share the rest; a confidence at or below 1/n_labels is raised just above it so that the answer stays
the top label), the only distribution the recording has. `GET /v1/models` lists the model.

The item is found by its text: the JSON string on the last `Text: ` line of the last user message that has one
(`llm.prompts.build_messages` writes it so), else the longest recorded text contained in the message (raw or as
a JSON string). A request whose text is not in the recording gets an HTTP 500 naming it, never a default
label; the server counts those (`ReplayServer.stats`).

    python benchmarks/replay_server.py --answers ../shared/data/pac_stance/stance.csv --port 8123
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import json
import math
import threading
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_FAILURES_KEPT = 50


@dataclass(frozen=True)
class Recorded:
    """One recorded answer: the label and its verbalized confidence (None: unknown)."""

    label: str
    confidence: float | None = None


@dataclass
class ReplayStats:
    """Requests seen, answered and failed (text not found / unreadable), and the first failures' reasons."""

    requests: int = 0
    answered: int = 0
    failed: int = 0
    by_fallback: int = 0  # answered through the longest-contained-text search, not the `Text:` line
    failures: list[str] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return {"requests": self.requests, "answered": self.answered, "failed": self.failed, "by_fallback": self.by_fallback,
                "failures": list(self.failures)}  # fmt: skip


def _normal(text: str) -> str:
    """NFC, whitespace collapsed and stripped: the key of the second, forgiving lookup."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class AnswerBook:
    """The recorded answers by text: exact lookup, then normalized, then the longest recorded text contained in
    the message. Conflicting answers for one text are refused when the book is built (`conflicts` lists them)."""

    def __init__(self, answers: Mapping[str, Recorded]) -> None:
        self.exact = dict(answers)
        self.normal: dict[str, Recorded] = {}
        for text, answer in self.exact.items():
            self.normal.setdefault(_normal(text), answer)
        self.by_length = sorted((t for t in self.exact if t.strip()), key=len, reverse=True)
        self.labels = sorted({a.label for a in self.exact.values()})

    @classmethod
    def from_rows(cls, rows: list[tuple[str, str, float | None]]) -> AnswerBook:
        """From (text, label, confidence) rows; a text recorded twice must have one label (the first confidence is kept)."""
        answers: dict[str, Recorded] = {}
        conflicts = []
        for text, label, confidence in rows:
            if text in answers and answers[text].label != label:
                conflicts.append(text)
            answers.setdefault(text, Recorded(label, confidence))
        if conflicts:
            raise ValueError(f"{len(conflicts)} texts are recorded with different answers, e.g. {conflicts[0][:80]!r}")
        return cls(answers)

    def find(self, messages: list[dict]) -> tuple[str, Recorded, bool] | None:
        """(text, its answer, whether the fallback search found it) for the item a chat request asks about, or None."""
        users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
        searched = users[-1] if users else ""
        for content in reversed(users):  # a re-ask ends with a correction: the item is in an earlier user message
            line = next((ln for ln in reversed(content.splitlines()) if ln.startswith("Text: ")), None)
            if line is None:
                continue
            searched = content
            try:
                text = json.loads(line[len("Text: "):])
            except json.JSONDecodeError:
                break
            found = (self.exact.get(text) or self.normal.get(_normal(text))) if isinstance(text, str) else None
            if found is not None:
                return text, found, False
            break
        for text in self.by_length:  # the longest first: a recorded text inside a longer one is not mistaken for it
            if text in searched or json.dumps(text, ensure_ascii=False)[1:-1] in searched or json.dumps(text)[1:-1] in searched:
                return text, self.exact[text], True
        return None


def _prompt_tokens(model: str, messages: list[dict], content: str) -> tuple[int, int]:
    """(prompt, completion) tokens as the product counts them for `model`, else 4 characters a token."""
    try:
        from autoannotator.llm.tokens import counter_for

        counter = counter_for(model)
        return counter.messages(messages), max(1, counter.count(content))
    except Exception:  # noqa: BLE001 - only a bill: fall back to the rule of thumb
        return max(1, len(json.dumps(messages)) // 4), max(1, len(content) // 4)


def _labels_of(request: dict, book: AnswerBook) -> list[str]:
    """The task's labels: the enum of the request's answer schema, else the labels the book holds."""
    response_format = request.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema") or response_format.get("schema") or {}
    enum = ((schema.get("properties") or {}).get("label") or {}).get("enum")
    return [str(v) for v in enum] if enum else book.labels


def completion_body(request: dict, book: AnswerBook, text: str, answer: Recorded, *, use_confidence: bool) -> dict:
    """The chat.completion body answering `request` with `answer`."""
    label = answer.label
    structured = "response_format" in request
    content = json.dumps({"label": label}) if structured else label
    logprobs = None
    if request.get("logprobs"):
        labels = _labels_of(request, book)
        p = answer.confidence if use_confidence and answer.confidence is not None else 1.0
        others = [lab for lab in labels if lab != label]
        # the answered label stays the distribution's top, as a real model's is at temperature 0: a recorded
        # confidence at or below 1/n_labels (37 of pac_stance's 2,299 rows are 0.1-0.3) is raised to just above it
        p = min(max(p, 1.0 / (len(others) + 1) + 0.01), 1.0)
        rest = (1.0 - p) / len(others) if others else 0.0
        alternatives = [{"token": label, "logprob": math.log(p), "bytes": None}]
        alternatives += [{"token": lab, "logprob": math.log(rest), "bytes": None} for lab in others if rest > 0]
        pieces = ['{"label": "', label, '"}'] if structured else [label]
        logprobs = {"content": [{"token": piece, "logprob": math.log(p) if piece == label else 0.0, "bytes": None,
                                 "top_logprobs": alternatives[: int(request.get("top_logprobs") or 5)] if piece == label else []}
                                for piece in pieces]}  # fmt: skip
    model = str(request.get("model") or "replay")
    prompt_tokens, completion_tokens = _prompt_tokens(model, request.get("messages") or [], content)
    return {
        "id": f"chatcmpl-replay-{abs(hash(text)) % 10**12}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop", "logprobs": logprobs}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }  # fmt: skip


class ReplayServer:
    """The replay server on 127.0.0.1 (port 0: a free one), served from a daemon thread.

    >>> with ReplayServer(book, model="gpt-4o") as server:
    ...     server.base_url  # 'http://127.0.0.1:PORT/v1'
    """

    def __init__(self, book: AnswerBook, *, model: str = "gpt-4o", port: int = 0, use_confidence: bool = True) -> None:
        self.book, self.model, self.use_confidence = book, model, use_confidence
        self.stats = ReplayStats()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> ReplayServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="replay-server", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _fail(self, why: str) -> None:
        with self.lock:
            self.stats.failed += 1
            if len(self.stats.failures) < MAX_FAILURES_KEPT:
                self.stats.failures.append(why[:300])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model", "created": 0, "owned_by": "replay"}]})
                self._send(404, {"error": {"message": f"replay server: no route GET {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802
                with server.lock:
                    server.stats.requests += 1
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    server._fail(f"POST {self.path}: not served")
                    return self._send(404, {"error": {"message": f"replay server: no route POST {self.path}"}})
                try:
                    request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    messages = request["messages"]
                except (ValueError, KeyError, TypeError) as exc:
                    server._fail(f"unreadable request: {exc}")
                    return self._send(500, {"error": {"message": f"replay server: unreadable request ({exc})"}})
                found = server.book.find(messages)
                if found is None:
                    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
                    tail = users[-1][-200:] if users else ""
                    server._fail(f"no recorded answer for the request ending {tail!r}")
                    return self._send(500, {"error": {"message": f"replay server: no recorded answer for this item (request ends {tail!r})"}})
                text, answer, by_fallback = found
                body = completion_body(request, server.book, text, answer, use_confidence=server.use_confidence)
                with server.lock:
                    server.stats.answered += 1
                    server.stats.by_fallback += int(by_fallback)
                self._send(200, body)

        return Handler


def book_from_csv(path: str, *, text: str = "text", label: str = "gpt4o_label", confidence: str | None = "gpt4o_confidence") -> AnswerBook:
    """An AnswerBook from a CSV with the item text and the recorded label (and confidence) columns."""
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        rows = [(r[text], r[label], float(r[confidence]) if confidence and r.get(confidence) not in (None, "") else None)
                for r in csv.DictReader(handle)]  # fmt: skip
    return AnswerBook.from_rows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", required=True, help="CSV with the texts and the recorded answers")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="gpt4o_label")
    parser.add_argument("--confidence-column", default="gpt4o_confidence", help="'' for none")
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--no-confidence", action="store_true", help="logprobs put all mass on the recorded label")
    args = parser.parse_args()
    book = book_from_csv(args.answers, text=args.text_column, label=args.label_column, confidence=args.confidence_column or None)
    server = ReplayServer(book, model=args.model, port=args.port, use_confidence=not args.no_confidence)
    print(f"replaying {len(book.exact)} recorded answers at {server.base_url} (Ctrl-C stops)", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        print(json.dumps(server.stats.snapshot()))


if __name__ == "__main__":
    main()
