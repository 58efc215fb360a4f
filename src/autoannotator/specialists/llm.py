"""A chat LLM as a voter in the specialist pool: behind an OpenAI-compatible endpoint, or an embedded GGUF model.

It shares the reviewer's client (run-store cache, in-flight cap, retries, ledger under its own name).
Classification: a distribution over the labels from logprobs where the server sends them, else from the
vote shares of `samples` answers. Multiple choice: the letter extracted strictly from each answer
(`llm.multiple_choice.extract_choice`), the distribution from `samples` answers (self-consistency) or the
letter's logprobs. Where no answer parses, it abstains on the item (an all-zero row) and says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from autoannotator.errors import AnnotatorError
from autoannotator.llm.asking import judge
from autoannotator.llm.client import ChatClient, ClientSettings, RequestRefused
from autoannotator.llm.embedded import EmbeddedChatClient
from autoannotator.llm.local_models import is_embedded
from autoannotator.llm.prices import PriceTable
from autoannotator.llm.prompts import PromptStyle, pick_examples
from autoannotator.llm.running import run_sync
from autoannotator.llm.sampling import Judgement
from autoannotator.specialists.base import Specialist, register
from autoannotator.store import RunStore
from autoannotator.task import Example, Task


@register("llm")
class LLMSpecialist(Specialist):
    """Votes with a chat LLM. Not trainable here: refinement leaves it as it is.

    Options: `model` (server model name, or `smollm2-135m` | `gemma3-270m` | a .gguf path for the embedded
    model when `base_url` is not given), `base_url`, `api_key_env` (the variable's name; the key is never
    stored), `prompt` (zero-shot, one-shot, k-shot, cot), `shots`, `structured` (json_schema, json_object
    for llama.cpp, none), `samples` (answers per item), `temperature` (default 0, or 0.7 with samples > 1),
    `max_tokens` (default 24, or 400 for cot), `logprobs`, `answer_retries`, `max_in_flight`, `timeout_s`,
    `max_retries`, `rate_limit` (requests/s), `price_table`, `n_ctx` (embedded context, tokens).
    """

    trainable = False
    needs_training = False

    def __init__(
        self, task: Task, *, model: str = "smollm2-135m", base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
        prompt: PromptStyle = "zero-shot", shots: int = 3, structured: Literal["json_schema", "json_object", "none"] = "json_object",
        samples: int = 1, temperature: float | None = None, max_tokens: int | None = None, logprobs: bool = True,
        answer_retries: int = 0, max_in_flight: int = 8, timeout_s: float = 60.0, max_retries: int = 5,
        rate_limit: float | None = None, price_table: str | None = None, n_ctx: int = 2048,
    ) -> None:  # fmt: skip
        super().__init__(task, model=model, base_url=base_url, api_key_env=api_key_env, prompt=prompt, shots=shots,
                         structured=structured, samples=samples, temperature=temperature, max_tokens=max_tokens,
                         logprobs=logprobs, answer_retries=answer_retries, max_in_flight=max_in_flight, timeout_s=timeout_s,
                         max_retries=max_retries, rate_limit=rate_limit, price_table=price_table, n_ctx=n_ctx)  # fmt: skip
        if samples < 1 or shots < 1 or answer_retries < 0 or max_in_flight < 1:
            raise AnnotatorError("llm specialist: samples, shots and max_in_flight must be at least 1, answer_retries at least 0")
        self.embedded = is_embedded(base_url, model)
        self.samples = samples
        self.temperature = temperature if temperature is not None else (0.0 if samples == 1 else 0.7)
        n_shots = {"zero-shot": 0, "one-shot": 1, "k-shot": shots, "cot": 0}[prompt]
        self.n_shots = shots if prompt == "cot" else n_shots  # cot: worked examples if there are any
        self.examples = pick_examples(task.examples, self.n_shots)
        if n_shots and not self.examples:
            raise AnnotatorError(f"llm specialist: the {prompt} prompt needs examples in the task file")
        self.settings = None if self.embedded else ClientSettings(
            base_url=base_url, model=model, api_key_env=api_key_env, timeout_s=timeout_s, max_retries=max_retries,
            max_in_flight=max_in_flight, rate_limit=rate_limit,
        )  # fmt: skip
        self.prices = PriceTable.load(price_table)
        self.store: RunStore | None = None
        self.account = f"specialist:{model}"

    def attach(self, store: RunStore, name: str) -> None:
        """The run store holds this specialist's cache and ledger (its lines are named `specialist:NAME`)."""
        self.store = store
        self.account = f"specialist:{name}"

    def use_examples(self, examples: Sequence[Example]) -> None:
        """Fill the few-shot slots the task file leaves empty with seed examples (with their rationales, if any)."""
        self.examples = pick_examples([*self.examples, *examples], self.n_shots)

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> LLMSpecialist:
        """An LLM specialist is not trained here: fitting leaves it unchanged."""
        return self

    def _client(self) -> Any:
        if self.store is None:
            raise AnnotatorError("an llm specialist needs the run store (its cache and ledger): run it through Annotator")
        if self.embedded:
            return EmbeddedChatClient(self.options["model"], self.store, account=self.account, n_ctx=self.options["n_ctx"])
        return ChatClient(self.settings, self.store, self.prices, account=self.account)

    async def _judge_all(self, texts: Sequence[str]) -> list[Judgement]:
        """Every text's judgement; a refusal of the client itself (401, 403, 404) stops the run."""
        try:
            async with self._client() as client:
                return await self._ask(client, texts)
        except RequestRefused as exc:
            raise AnnotatorError(f"the LLM server refused the llm specialist's request (HTTP {exc.status}): {exc.message}") from None

    async def _ask(self, client: Any, texts: Sequence[str]) -> list[Judgement]:
        o = self.options
        asked = (
            judge(client, self.task, text, prompt=o["prompt"], examples=self.examples, structured=o["structured"],
                  samples=self.samples, temperature=self.temperature, max_tokens=o["max_tokens"],
                  logprobs=o["logprobs"] and not self.embedded, answer_retries=o["answer_retries"])
            for text in texts
        )  # fmt: skip  (in-process logprobs would need the logits of every token kept)
        return list(await asyncio.gather(*asked))

    def predict_with_details(self, texts: Sequence[str]) -> tuple[np.ndarray, list[dict]]:
        """(n, n_labels) probabilities (all-zero rows: abstained) and per item the answer, or the reason it
        abstained, the parsed/asked sample counts and, for chains of thought, the last reasoning lines."""
        judgements = run_sync(self._judge_all(texts))
        probs = np.zeros((len(texts), self.n_labels))
        details = []
        for i, judgement in enumerate(judgements):
            if judgement.label is not None:
                probs[i] = [judgement.probs.get(name, 0.0) for name in self.task.label_names]
                probs[i] /= probs[i].sum()
            details.append({k: v for k, v in {"reason": judgement.reason, **judgement.detail}.items() if v is not None})
        return probs, details

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_with_details(texts)[0]

    def _save_weights(self, folder: Path) -> None:
        """Nothing beyond the manifest: the model lives at its endpoint or in its package."""

    def _load_weights(self, folder: Path) -> None:
        """Nothing to load."""
