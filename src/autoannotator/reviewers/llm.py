"""The LLM reviewer over the OpenAI chat-completions API: strict labels, bounded retries, cached and accounted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field

from autoannotator.errors import AnnotatorError
from autoannotator.choices import OptionsError, split_item
from autoannotator.llm.asking import judge
from autoannotator.llm.budget import Budget, BudgetExhausted
from autoannotator.llm.client import ITEM_REFUSALS, CallFailed, ChatClient, ClientSettings, RequestRefused
from autoannotator.llm.logprobs import label_probs_from_logprobs
from autoannotator.llm.multiple_choice import build_choice_messages
from autoannotator.llm.prices import PriceTable
from autoannotator.llm.prompts import PromptStyle, build_messages, correction_message, label_schema, parse_label, pick_examples, proposals_block
from autoannotator.llm.running import run_sync
from autoannotator.reviewers.base import Answer, Reviewer, ReviewItem
from autoannotator.store import RunStore
from autoannotator.task import Example, Task


class LLMSettings(ClientSettings):
    """Client settings plus how to ask: prompt style, shots, structured output, answer retries."""

    model_config = ConfigDict(extra="forbid")

    prompt: PromptStyle = "zero-shot"
    shots: int = Field(3, ge=1)
    structured: Literal["json_schema", "json_object", "none"] = "json_schema"
    answer_retries: int = Field(2, ge=0, description="re-asks after an answer outside the label set")
    temperature: float = 0.0
    max_tokens: int | None = None
    logprobs: bool = True
    samples: int = Field(1, ge=1, description="answers per item; more than one: self-consistency, the majority of the samples")
    price_table: str | None = None
    price_in: float | None = Field(None, ge=0, description="USD per 1M input tokens of this model (instead of the price table)")
    price_out: float | None = Field(None, ge=0, description="USD per 1M output tokens of this model (instead of the price table)")
    max_refused_in_a_row: int = Field(10, ge=1, description="stop the run after this many items in a row refused (HTTP 400)")




class LLMReviewer(Reviewer):
    """Asks an OpenAI-compatible LLM about each hard item, many in flight at once."""

    source = "llm"

    def __init__(self, task: Task, settings: LLMSettings | None = None, *, examples: Sequence[Example] = ()) -> None:
        super().__init__(task)
        self.settings = settings or LLMSettings()
        self.prices = PriceTable.load(self.settings.price_table)
        if (self.settings.price_in is None) != (self.settings.price_out is None):
            raise AnnotatorError("--llm-price-in and --llm-price-out go together (USD per 1M input and output tokens)")
        if self.settings.price_in is not None:
            self.prices = self.prices.with_price(self.settings.model, self.settings.price_in, self.settings.price_out)
        self.n_shots = {"zero-shot": 0, "one-shot": 1, "k-shot": self.settings.shots, "cot": 0}[self.settings.prompt]
        self.examples = pick_examples([*task.examples, *examples], self.n_shots)
        self.store: RunStore | None = None
        self.budget: Budget | None = None
        self.refused_in_a_row = 0

    def attach(self, store: RunStore) -> None:
        self.store = store

    def use_examples(self, examples: Sequence[Example]) -> None:
        """Fill the few-shot slots the task file leaves empty with seed examples."""
        self.examples = pick_examples([*self.examples, *examples], self.n_shots)

    def max_tokens(self) -> int:
        """The completion limit sent with each request (tokens): the setting, else 400 for cot and 24 otherwise."""
        return self.settings.max_tokens or (400 if self.settings.prompt == "cot" else 24)

    def _params(self) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {"temperature": s.temperature, "max_tokens": self.max_tokens()}
        if s.prompt != "cot" and s.structured == "json_schema":
            schema = {"name": "label", "strict": True, "schema": label_schema(self.task)}
            params["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif s.prompt != "cot" and s.structured == "json_object":
            params["response_format"] = {"type": "json_object", "schema": label_schema(self.task)}
        if s.logprobs:
            params |= {"logprobs": True, "top_logprobs": 5}
        return params

    def messages(self, text: str, votes: dict[str, dict] | None = None) -> list[dict] | None:
        """The first request's messages for one item; where the pool has LLM specialists, their answers (and
        reasoning tails) too. A multiple-choice item is asked with its options (None when they cannot be read:
        nothing is asked)."""
        json_answer = self.settings.structured != "none"
        if self.task.type == "multiple_choice":
            try:
                split_item(text)
            except OptionsError:
                return None
            build = build_choice_messages
        else:
            build = build_messages
        return build(self.task, text, style=self.settings.prompt, examples=self.examples, json_answer=json_answer,
                     proposals=proposals_block(votes or {}))

    async def _by_samples(self, client: ChatClient, item: ReviewItem) -> Answer:
        """Self-consistency over `samples` answers (temperature 0.7 unless set), and every multiple-choice item."""
        s = self.settings
        temperature = s.temperature if s.samples == 1 or "temperature" in s.model_fields_set else 0.7
        try:
            judged = await judge(client, self.task, item.text, prompt=s.prompt, examples=self.examples, structured=s.structured,
                                 samples=s.samples, temperature=temperature, max_tokens=s.max_tokens, logprobs=s.logprobs,
                                 answer_retries=s.answer_retries, proposals=proposals_block(item.votes))  # fmt: skip
        except RequestRefused as exc:
            return self._refused(item, exc, 1)
        except BudgetExhausted as exc:
            return Answer(None, detail={"error": str(exc)}, reason="budget")
        return Answer(judged.label, probs=judged.probs, detail=judged.detail | {"model": s.model}, reason=judged.reason)

    async def _review_one(self, client: ChatClient, item: ReviewItem) -> Answer:
        if self.settings.samples > 1 or self.task.type == "multiple_choice":
            return await self._by_samples(client, item)
        messages, params = self.messages(item.text, item.votes), self._params()
        raw = None
        for attempt in range(1, self.settings.answer_retries + 2):
            try:
                response, cached = await client.complete(messages, params)
            except CallFailed as exc:
                return Answer(None, detail={"error": str(exc), "attempts": attempt}, reason="retries_exhausted")
            except BudgetExhausted as exc:
                if attempt > 1:  # the answer came (outside the label set): it decides the item, not the cap
                    return Answer(None, detail={"error": "answer outside the label set", "last_answer": (raw or "")[:200],
                                                "attempts": attempt - 1, "budget": str(exc)}, reason="out_of_set")  # fmt: skip
                return Answer(None, detail={"error": str(exc), "attempts": attempt}, reason="budget")
            except RequestRefused as exc:
                return self._refused(item, exc, attempt)
            if not cached:
                self.refused_in_a_row = 0
            raw = (response["choices"][0].get("message") or {}).get("content")
            label = parse_label(raw, self.task)
            if label is not None:
                probs = label_probs_from_logprobs(response, label, self.task) if self.settings.logprobs else None
                return Answer(label, probs=probs, detail={"attempts": attempt, "cached": cached, "model": self.settings.model})
            messages = [*messages, {"role": "assistant", "content": raw or ""}, correction_message(self.task)]
        return Answer(None, detail={"error": "answer outside the label set", "last_answer": (raw or "")[:200],
                                    "attempts": self.settings.answer_retries + 1}, reason="out_of_set")  # fmt: skip

    def _refused(self, item: ReviewItem, exc: RequestRefused, attempt: int) -> Answer:
        """A refusal about this item's request leaves it unresolved with the server's reason; a refusal of the
        client itself (401, 403, 404, ...) or `max_refused_in_a_row` refusals in a row stop the run."""
        stop = f"the LLM server refused the request for item {item.item_id} (HTTP {exc.status}): {exc.message}"
        if exc.status not in ITEM_REFUSALS:
            raise AnnotatorError(stop)
        self.refused_in_a_row += 1
        if self.refused_in_a_row >= self.settings.max_refused_in_a_row:
            raise AnnotatorError(f"{self.refused_in_a_row} requests in a row refused; the last: {stop}")
        return Answer(None, detail={"error": exc.message, "status": exc.status, "attempts": attempt}, reason=f"http_{exc.status}")

    async def _review_all(self, items: Sequence[ReviewItem]) -> list[Answer]:
        if self.n_shots and not self.examples:
            raise AnnotatorError(f"the {self.settings.prompt} prompt needs examples: add 'examples' to the task file or give a seed file")
        async with ChatClient(self.settings, self.store, self.prices, budget=self._budget()) as client:
            tasks = [asyncio.ensure_future(self._review_one(client, item)) for item in items]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:  # a stop: cancel the requests still in flight before the client closes
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    def check_ready(self) -> None:
        """Before anything is trained or paid: --max-cost needs this model's price (AnnotatorError naming the flags)."""
        if self.settings.max_cost_usd is not None and self.prices.price(self.settings.model) is None:
            raise AnnotatorError(f"--max-cost needs the price of '{self.settings.model}': give --llm-price-in and --llm-price-out "
                                 "(USD per 1M input and output tokens) or a --price-table that lists it")  # fmt: skip

    def _budget(self) -> Budget:
        """The run's cap, made once per run from what the ledger says earlier sessions spent: paid calls, and
        requests sent but never answered (lost, or left in flight by a killed session) at their worst case."""
        if self.budget is None:
            usage = self.store.llm_usage().values()
            self.budget = Budget(model=self.settings.model, prices=self.prices, max_cost_usd=self.settings.max_cost_usd,
                                 max_calls=self.settings.max_calls, spent_usd=sum(u["cost_usd"] or 0.0 for u in usage),
                                 calls=int(sum(u["calls"] + u["lost"] for u in usage)))  # fmt: skip
        return self.budget

    def review(self, items: Sequence[ReviewItem]) -> list[Answer]:
        if self.store is None:
            raise RuntimeError("attach a run store before reviewing (it holds the cache and the ledger)")
        return run_sync(self._review_all(items))
