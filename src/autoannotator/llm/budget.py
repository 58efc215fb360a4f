"""The hard cap on a run's LLM spend (`--max-cost USD`) and calls (`--max-llm-calls N`).

Before each request the cap reserves the request's worst case: its prompt counted as an upper bound
(`TokenCounter.messages(worst_case=True)`: tiktoken's count for OpenAI models, else the UTF-8 bytes) at the
input price, plus `max_tokens` at the output price. A request is sent only if what the run has paid (the
ledger, every session) plus every reservation still in flight plus this one stays within the cap; otherwise
the cap closes and no further request is sent in this session (cache hits are still served: they are free).
An answered request's reservation becomes its billed cost; a request the server refused with a status
(not billed) frees it; a request that timed out or lost its connection keeps it, since the server may have
billed it. Every request is written to the run store's ledger at its worst case before it is sent
(`in_flight`), so a request that ended without an answer, or that a killed session left in flight, counts at
its worst case (and as a call) in every later session too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from autoannotator.errors import AnnotatorError
from autoannotator.llm.prices import PriceTable
from autoannotator.llm.tokens import TokenCounter, counter_for, schema_text


class BudgetExhausted(Exception):
    """The next request could pass --max-cost or --max-llm-calls: the reviewer stops asking."""


@dataclass
class Reservation:
    """A request's worst case: prompt tokens bounded from above, `max_tokens`, and their USD (None: price unknown)."""

    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


class Budget:
    """Caps for one run: `max_cost_usd` (USD) and `max_calls` (requests), counting `spent_usd` and `calls` paid
    in earlier sessions. Use from one event loop: `reserve` before a request, then `settle` or `release`."""

    def __init__(self, *, model: str, prices: PriceTable, max_cost_usd: float | None, max_calls: int | None,
                 spent_usd: float, calls: int) -> None:  # fmt: skip
        if max_cost_usd is not None and prices.price(model) is None:
            raise AnnotatorError(f"--max-cost needs the price of '{model}': add it to the price table (--price-table)")
        self.model, self.prices = model, prices
        self.max_cost_usd, self.max_calls = max_cost_usd, max_calls
        self.spent_usd, self.calls = spent_usd, calls
        self.reserved_usd, self.in_flight = 0.0, 0
        self.closed = False

    @cached_property
    def counter(self) -> TokenCounter:
        return counter_for(self.model)

    @property
    def active(self) -> bool:
        return self.max_cost_usd is not None or self.max_calls is not None

    def worst_case(self, messages: list[dict], params: dict[str, Any]) -> Reservation:
        """The most this request can be billed: prompt tokens bounded from above, and its `max_tokens`."""
        prompt = self.counter.messages(messages, extra=schema_text(params), worst_case=True)
        completion = int(params.get("max_tokens") or 0)
        return Reservation(prompt, completion, self.prices.cost(self.model, prompt, completion))

    def worst_case_usd(self, messages: list[dict], params: dict[str, Any]) -> float | None:
        """The worst case in USD (None: the model's price is unknown)."""
        return self.worst_case(messages, params).cost_usd

    def reserve(self, messages: list[dict], params: dict[str, Any]) -> Reservation:
        """Reserve the request's worst case (returned: the ledger keeps it too), or raise BudgetExhausted (and
        stay closed) if it could pass a cap."""
        reservation = self.worst_case(messages, params)
        if not self.active:
            return reservation
        worst = reservation.cost_usd or 0.0
        over_calls = self.max_calls is not None and self.calls + self.in_flight + 1 > self.max_calls
        over_cost = self.max_cost_usd is not None and self.spent_usd + self.reserved_usd + worst > self.max_cost_usd
        if self.closed or over_calls or over_cost:
            self.closed = True
            raise BudgetExhausted(self.describe())
        self.reserved_usd += worst
        self.in_flight += 1
        return reservation

    def settle(self, reservation: Reservation, cost_usd: float | None = None) -> None:
        """The request ended and may have been billed: `cost_usd` as billed, or (None: unknown) its reservation."""
        if not self.active:
            return
        self._free(reservation)
        self.spent_usd += (reservation.cost_usd or 0.0) if cost_usd is None else cost_usd
        self.calls += 1

    def release(self, reservation: Reservation) -> None:
        """The request ended without being billed (the server answered with an error status)."""
        if self.active:
            self._free(reservation)

    def _free(self, reservation: Reservation) -> None:
        self.reserved_usd -= reservation.cost_usd or 0.0
        self.in_flight -= 1

    def describe(self) -> str:
        parts = []
        if self.max_cost_usd is not None:
            parts.append(f"${self.spent_usd:.6f} spent of --max-cost ${self.max_cost_usd:g}")
        if self.max_calls is not None:
            parts.append(f"{self.calls} calls of --max-llm-calls {self.max_calls}")
        return "budget reached: " + ", ".join(parts)
