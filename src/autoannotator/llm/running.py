"""Run the async LLM client from synchronous code, also where an event loop already runs (Jupyter, async apps)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion and return its result (its exception propagates).

    With no event loop running in this thread: `asyncio.run`. Inside a running loop (a notebook cell, an async
    web handler), `asyncio.run` raises "cannot be called from a running event loop" and blocking that loop would
    deadlock it, so the coroutine runs on a fresh loop in one worker thread while this thread waits. Whatever the
    coroutine touches must allow use from that thread (the run store's connection does).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoannotator-llm") as worker:
        return worker.submit(asyncio.run, coroutine).result()
