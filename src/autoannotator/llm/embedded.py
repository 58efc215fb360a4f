"""An embedded GGUF chat model (llama-cpp-python, in-process) behind the same `complete` call as ChatClient.

Answers are OpenAI-format chat completions, cached in the run store under the same request hash and
recorded in the ledger (0 USD: no API is billed; the CPU time is the pool's, not this ledger's).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from typing import Any

from autoannotator.errors import AnnotatorError
from autoannotator.llm.client import request_key
from autoannotator.llm.local_models import gguf_path
from autoannotator.store import RunStore


def llama_threads() -> int:
    """Threads llama.cpp computes with, for single tokens and prompt batches alike: half the CPUs this process may
    run on, at least 1 (llama-cpp-python's own default for single tokens; its default for batches is every CPU).

    llama.cpp's threads wait for each other at every step of the graph; on CPUs shared with other work a thread per
    CPU stalls at those barriers. Measured on 2 shared cores (benchmarks/results/review_throughput.md): the embedded
    reviewer took about 1.5 s per item with 2 threads and 0.19 s with 1 at load average 11, the same answers."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(available // 2, 1)


@functools.cache
def load_llama(path: str, n_ctx: int, threads: int):  # noqa: ANN201 - llama_cpp is an optional import
    """One loaded model per (file, context size, threads) in this process (threads: usually `llama_threads()`).

    Chunks, specialists and the embedded reviewer on the same model reuse it, and llama.cpp reuses the evaluated
    prompt prefix (system prompt, task, examples) from one request to the next while consecutive prompts share it.
    Raises AnnotatorError when llama-cpp-python is not installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        raise AnnotatorError("the embedded LLM needs llama-cpp-python: pip install 'autoannotator[llm]'") from None
    return Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False, seed=0)


class EmbeddedChatClient:
    """`async with EmbeddedChatClient(model, store) as client: await client.complete(messages, params)`.

    `model` is an embedded name (`smollm2-135m`, `gemma3-270m`) or a .gguf path; `account` names the ledger
    line (default: `local:<model>`). Requests run one at a time (one model context)."""

    def __init__(self, model: str, store: RunStore, *, account: str | None = None, n_ctx: int = 2048) -> None:
        self.model = model
        self.store = store
        self.account = account or f"local:{model}"
        self.n_ctx = n_ctx
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> EmbeddedChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    @property
    def llm(self):  # noqa: ANN201 - llama_cpp is an optional import
        return load_llama(str(gguf_path(self.model)), self.n_ctx, llama_threads())

    async def complete(self, messages: list[dict], params: dict[str, Any]) -> tuple[dict, bool]:
        """(response as a dict, whether it came from the cache)."""
        key = request_key("embedded", f"local:{self.model}", messages, params)
        cached = self.store.cache_get(key)
        if cached is not None:
            self.store.record_llm_call(key=key, model=self.account, status="cached")
            return cached, True
        async with self._lock:
            started = time.perf_counter()
            response = await asyncio.to_thread(self.llm.create_chat_completion, messages=messages, **params)
        usage = response.get("usage") or {}
        self.store.record_llm_call(
            key=key, model=self.account, status="paid", response=response, prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0, latency_s=time.perf_counter() - started,
        )  # fmt: skip
        return response, False
