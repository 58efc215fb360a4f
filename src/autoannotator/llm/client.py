"""An async OpenAI-compatible chat client with a run-store cache, retries, a cap on requests in flight and a ledger.

Works with any server that speaks the chat-completions API (OpenAI, DeepSeek, MiniMax, vLLM, Ollama,
llama.cpp's server). The API key is read from an environment variable and never stored or logged.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import os
import random
import time
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict, Field

from autoannotator.errors import AnnotatorError
from autoannotator.llm.budget import Budget, Reservation
from autoannotator.llm.prices import PriceTable
from autoannotator.store import RunStore

RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)


class ClientSettings(BaseModel):
    """Where and how to call the LLM."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    max_in_flight: int = Field(8, ge=1)
    rate_limit: float | None = Field(None, gt=0, description="requests per second at most")
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_cap_s: float = Field(30.0, gt=0)
    max_cost_usd: float | None = Field(None, ge=0, description="hard cap on the run's LLM spend, USD (llm.budget)")
    max_calls: int | None = Field(None, ge=0, description="hard cap on the run's LLM requests")


class CallFailed(Exception):
    """A request that still failed after its retries."""


ITEM_REFUSALS = (400, 413, 422)  # statuses about one request's content (too long, filtered): that item's failure


class RequestRefused(Exception):
    """The server refused a request with a status that retrying cannot change (400, 401, 403, 404, 413, 422, ...).

    `status` is the HTTP status, `message` the server's reason (its error message, else the error's first line).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


def request_key(base_url: str, model: str, messages: list[dict], params: dict[str, Any]) -> str:
    """The cache key: a hash of everything that determines the answer, the server (its base URL) included: the
    same model name at another server (a local one, another provider) is another model."""
    request = {"base_url": base_url, "model": model, "messages": messages, "params": params}
    payload = json.dumps(request, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def retry_after_seconds(exc: Exception) -> float | None:
    """The server's Retry-After (seconds, milliseconds or an HTTP date), if it sent one that reads as a finite
    time; None for none or a malformed one (`soon`, `nan`, a broken date): the caller backs off as usual."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    told = _seconds(headers.get("retry-after-ms"), 1000)
    return told if told is not None else _seconds(headers.get("retry-after"), 1)


def _seconds(value: str | None, per_second: float) -> float | None:
    """A header value as seconds (a number of 1/`per_second` seconds, or an HTTP date), None when unreadable."""
    if value is None:
        return None
    try:
        seconds = float(value) / per_second
    except ValueError:
        if per_second != 1:
            return None
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


USAGE_SLACK = 10  # a usage more than this many times the request's worst case is not plausible
ANSWER_CHARS_PER_TOKEN = 16  # an answer longer than this many characters per max_tokens is malformed (no token is that long)


def plausible_usage(response: dict, worst: Reservation) -> tuple[int, int] | None:
    """(prompt, completion) tokens from the response's `usage` when they are plausible for a request whose worst
    case is `worst`: integers, at least one prompt token, none negative, neither above `USAGE_SLACK` times the
    worst case. None otherwise (missing, null, strings, lists, floats, absurd sizes): the caller counts the worst case."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in (prompt, completion)):
        return None
    limit_prompt = USAGE_SLACK * max(worst.prompt_tokens, 1)
    limit_completion = USAGE_SLACK * worst.completion_tokens if worst.completion_tokens else None
    if not 0 < prompt <= limit_prompt or completion < 0 or (limit_completion is not None and completion > limit_completion):
        return None
    return prompt, completion


def check_answer(response: dict, max_tokens: int | None) -> None:
    """Raise ValueError for a response without choices, or with an answer longer than `ANSWER_CHARS_PER_TOKEN`
    characters per token of `max_tokens` (a server that ignores the limit): neither is read or kept."""
    choices = response.get("choices")
    if not choices or not isinstance(choices, list):
        raise ValueError("response has no choices")
    limit = ANSWER_CHARS_PER_TOKEN * max_tokens if max_tokens else None
    for choice in choices:
        content = ((choice or {}).get("message") or {}).get("content") or ""
        if limit is not None and len(content) > limit:
            raise ValueError(f"answer of {len(content)} characters, more than {limit} for max_tokens {max_tokens}")


class ChatClient:
    """Use inside one event loop: `async with ChatClient(...) as client: await client.complete(...)`.

    `account` names this client's lines in the ledger (default: the model), e.g. one per LLM specialist; `budget`
    is the run's cap (`llm.budget`; none by default)."""

    def __init__(self, settings: ClientSettings, store: RunStore, prices: PriceTable, *, account: str | None = None,
                 budget: Budget | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.account = account or settings.model
        self.store = store
        self.prices = prices
        self.budget = budget or Budget(model=settings.model, prices=prices, max_cost_usd=None, max_calls=None, spent_usd=0.0, calls=0)
        key = os.environ.get(settings.api_key_env)
        if not key and settings.base_url is None:
            raise AnnotatorError(f"set {settings.api_key_env} to the API key, or give --llm-base-url for a local server")
        self._api_key = key or "not-needed"
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._pace = asyncio.Lock()
        self._next_start = 0.0
        self._client: openai.AsyncOpenAI | None = None
        self._in_flight: dict[str, asyncio.Future[dict]] = {}

    async def __aenter__(self) -> ChatClient:
        self._client = openai.AsyncOpenAI(
            api_key=self._api_key, base_url=self.settings.base_url, timeout=self.settings.timeout_s, max_retries=0
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    async def _wait_for_rate_limit(self) -> None:
        if self.settings.rate_limit is None:
            return
        async with self._pace:
            delay = self._next_start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next_start = max(time.monotonic(), self._next_start) + 1.0 / self.settings.rate_limit

    def _backoff(self, attempt: int, exc: Exception) -> float:
        """Retry-After when the server gives one, else exponential backoff with full jitter."""
        told = retry_after_seconds(exc)
        if told is not None:
            return min(told, self.settings.backoff_cap_s * 4)
        return random.uniform(0, min(self.settings.backoff_cap_s, self.settings.backoff_base_s * 2**attempt))

    async def complete(self, messages: list[dict], params: dict[str, Any]) -> tuple[dict, bool]:
        """(response as a dict, whether it was not paid for by this call: a cache hit, or a copy of an identical
        request already in flight, which is sent once). Raises CallFailed after the retries, RequestRefused at once
        when the server refuses the request with a status that a retry cannot change, BudgetExhausted when the
        request could pass the run's cap (`llm.budget`)."""
        model = self.settings.model
        key = request_key(str(self._client.base_url), model, messages, params)
        cached = self.store.cache_get(key)
        if cached is None and key in self._in_flight:  # a duplicate (retweet, copy): wait for the one request
            cached = await asyncio.shield(self._in_flight[key])
        if cached is not None:
            self.store.record_llm_call(key=key, model=self.account, status="cached")
            return cached, True
        request = asyncio.ensure_future(self._send(key, messages, params))
        self._in_flight[key] = request
        request.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await request, False

    async def _send(self, key: str, messages: list[dict], params: dict[str, Any]) -> dict:
        """One request with its retries. Each attempt is written to the ledger at its worst case before it is
        sent (`in_flight`), then ends `paid` (the answer cached in the same transaction), `failed` (refused with
        an error status, not billed) or `lost` (timed out, cut off, unreadable: it may have been billed)."""
        model = self.settings.model
        last_error: Exception | None = None
        for attempt in range(self.settings.max_retries + 1):
            async with self._slots:
                await self._wait_for_rate_limit()
                reservation = self.budget.reserve(messages, params)
                call = self.store.reserve_llm_call(key=key, model=self.account, prompt_tokens=reservation.prompt_tokens,
                                                   completion_tokens=reservation.completion_tokens, cost_usd=reservation.cost_usd)  # fmt: skip
                started = time.perf_counter()
                try:
                    completion = await self._client.chat.completions.create(model=model, messages=messages, **params)
                    response = completion.model_dump(mode="json")
                    check_answer(response, params.get("max_tokens"))
                except openai.APIStatusError as exc:
                    self.budget.release(reservation)  # the server answered with an error status: not billed
                    self.store.finish_llm_call(call, status="failed", latency_s=time.perf_counter() - started, error=_short(exc))
                    if not isinstance(exc, RETRYABLE) and exc.status_code not in (408, 409):
                        raise RequestRefused(exc.status_code, server_reason(exc)) from None
                    last_error = exc
                except (*RETRYABLE, ValueError, TypeError, AttributeError, json.JSONDecodeError, openai.APIResponseValidationError) as exc:
                    self.budget.settle(reservation)  # timed out, cut off or unreadable: it may have been billed
                    self.store.finish_llm_call(call, status="lost", latency_s=time.perf_counter() - started, error=_short(exc))
                    last_error = exc
                else:
                    return self._paid(call, response, reservation, time.perf_counter() - started)
            if attempt < self.settings.max_retries:
                await asyncio.sleep(self._backoff(attempt, last_error))
        raise CallFailed(_short(last_error))

    def _paid(self, call: int, response: dict, reservation: Reservation, latency_s: float) -> dict:
        """Settle and keep an answer: the server's usage when plausible, else the request's worst case (estimated)."""
        usage = plausible_usage(response, reservation)
        if usage is None:
            prompt_tokens, completion_tokens, cost = reservation.prompt_tokens, reservation.completion_tokens, reservation.cost_usd
        else:
            prompt_tokens, completion_tokens = usage
            cost = self.prices.cost(self.settings.model, prompt_tokens, completion_tokens)
        self.budget.settle(reservation, cost)
        self.store.finish_llm_call(call, status="paid", response=response, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                   cost_usd=cost, estimated=usage is None, latency_s=latency_s)  # fmt: skip
        return response


def server_reason(exc: openai.APIStatusError) -> str:
    """The error message the server sent (OpenAI's `{"error": {"message": ...}}`), else the error's first line."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:300] if message else _short(exc)


def _short(exc: Exception | None) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
