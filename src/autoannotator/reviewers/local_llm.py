"""The embedded offline LLM reviewer: a small GGUF model in-process with llama-cpp-python.

Tiny base models follow chat prompts badly, so this reviewer does not generate: it builds a few-shot
plain prompt, reads the next-token probability of each label word (every spelling), and applies
contextual calibration (divides by the probabilities it gives a content-free input). The answer is
always a probability distribution over the task labels.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from autoannotator.errors import AnnotatorError
from autoannotator.llm.embedded import llama_threads, load_llama
from autoannotator.llm.local_models import gguf_path
from autoannotator.llm.prompts import pick_examples
from autoannotator.reviewers.base import Answer, Reviewer, ReviewItem
from autoannotator.store import RunStore
from autoannotator.task import Example, Task

CONTENT_FREE = ("N/A", "", "[MASK]")


def one_line(text: str) -> str:
    return " ".join(text.split())


class LocalLLMReviewer(Reviewer):
    """Scores the labels with an embedded GGUF model (default Gemma 3 270M); no network, no cost.

    `threads`: llama.cpp's threads (default `llama_threads()`, half the CPUs); `tokens_evaluated` counts the tokens
    this reviewer ran through the model (the few-shot prefix once, then each item's own tokens)."""

    source = "llm"

    def __init__(
        self, task: Task, *, model: str = "gemma3-270m", shots: int = 6, examples: Sequence[Example] = (), n_ctx: int = 2048,
        threads: int | None = None,
    ) -> None:
        super().__init__(task)
        self.model_name = model
        self.n_shots = shots
        self.examples = pick_examples([*task.examples, *examples], shots)
        self.n_ctx = n_ctx
        self.threads = threads
        self.store: RunStore | None = None
        self.last_prompt_tokens = 0
        self.tokens_evaluated = 0

    def attach(self, store: RunStore) -> None:
        self.store = store

    def use_examples(self, examples: Sequence[Example]) -> None:
        """Fill the few-shot slots the task file leaves empty with seed examples."""
        self.examples = pick_examples([*self.examples, *examples], self.n_shots)
        for stale in ("prefix", "prefix_tokens", "calibration"):
            self.__dict__.pop(stale, None)

    @property
    def llm(self):  # noqa: ANN201 - llama_cpp is an optional import
        """The process's one loaded copy of the model (`load_llama`: its thread count, shared with embedded chat)."""
        return load_llama(str(gguf_path(self.model_name)), self.n_ctx, self.threads or llama_threads())

    @cached_property
    def prefix(self) -> str:
        lines = [self.task.instruction or f"Classify each text ({self.task.name}).", f"Labels: {', '.join(self.task.label_names)}.", ""]
        for example in self.examples:
            lines += [f"Text: {one_line(example.text)}", f"Label: {example.label}", ""]
        return "\n".join(lines)

    @cached_property
    def label_tokens(self) -> list[list[int]]:
        """For each label, the first token of each spelling (' name', ' Name', 'name', aliases), deduplicated."""
        taken: dict[int, int] = {}
        result = []
        for i, label in enumerate(self.task.labels):
            ids = set()
            for spelling in [label.name, *label.aliases]:
                for form in {f" {spelling}", f" {spelling.capitalize()}", spelling}:
                    token = self.llm.tokenize(form.encode(), add_bos=False, special=False)[0]
                    if taken.setdefault(token, i) == i:
                        ids.add(token)
            if not ids:
                raise AnnotatorError(f"label '{label.name}' shares its first token with another label; rename it or add an alias")
            result.append(sorted(ids))
        return result

    @cached_property
    def prefix_tokens(self) -> list[int]:
        return self.llm.tokenize(self.prefix.encode(), add_bos=True, special=False)

    def _label_probs(self, text: str) -> np.ndarray:
        """Raw next-token probability mass of each label after 'Text: ...\nLabel:', shape (n_labels,).

        The few-shot prefix is evaluated once and its KV cache kept; each item only evaluates its own tokens after
        it (`tokens_evaluated` counts what went through the model). The prefix is evaluated again only when another
        prompt on the same model (another reviewer, an embedded chat request) replaced it."""
        import llama_cpp

        prefix = self.prefix_tokens
        suffix = self.llm.tokenize(f"Text: {one_line(text)}\nLabel:".encode(), add_bos=False, special=False)
        suffix = suffix[-(self.n_ctx - len(prefix) - 8) :]
        if self.llm.n_tokens < len(prefix) or list(self.llm.input_ids[: len(prefix)]) != prefix:
            self.llm.reset()
            self.llm.eval(prefix)
            self.tokens_evaluated += len(prefix)
        self.llm.n_tokens = len(prefix)
        self.llm.eval(suffix)
        self.tokens_evaluated += len(suffix)
        self.last_prompt_tokens = len(prefix) + len(suffix)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.llm.n_vocab(),))
        exp = np.exp(logits.astype(np.float64) - logits.max())
        probs = exp / exp.sum()
        return np.array([probs[ids].sum() for ids in self.label_tokens])

    @cached_property
    def calibration(self) -> np.ndarray:
        """Mean normalized label probabilities for content-free inputs (contextual calibration)."""
        rows = [p / p.sum() for p in (self._label_probs(t) for t in CONTENT_FREE)]
        return np.mean(rows, axis=0)

    def score(self, text: str) -> dict[str, float]:
        """Calibrated probability of each task label for one text."""
        raw = self._label_probs(text)
        calibrated = (raw / raw.sum()) / self.calibration
        calibrated /= calibrated.sum()
        return {name: round(float(p), 6) for name, p in zip(self.task.label_names, calibrated)}

    def review(self, items: Sequence[ReviewItem]) -> list[Answer]:
        answers = []
        model = f"local:{self.model_name}"
        for item in items:
            key = hashlib.sha256(json.dumps([model, self.prefix, item.text]).encode()).hexdigest()
            cached = self.store.cache_get(key) if self.store else None
            started = time.perf_counter()
            probs = cached["probs"] if cached else self.score(item.text)
            if self.store:
                tokens = 0 if cached else self.last_prompt_tokens
                self.store.record_llm_call(
                    key=key, model=model, status="cached" if cached else "paid", response={"probs": probs},
                    latency_s=0.0 if cached else time.perf_counter() - started, prompt_tokens=tokens, completion_tokens=0,
                )  # fmt: skip
            answers.append(Answer(max(probs, key=probs.get), probs=probs, detail={"model": model, "cached": bool(cached)}))
        return answers
