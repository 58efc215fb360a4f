"""Asking an LLM about one item n times and aggregating the answers (self-consistency, Wang et al. 2023).

Shared by every caller that turns chat answers into a distribution over the task's labels; the client
(`ChatClient` or `EmbeddedChatClient`) brings the cache, the in-flight cap, the retries and the ledger.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from autoannotator.llm.budget import BudgetExhausted
from autoannotator.llm.client import ITEM_REFUSALS, CallFailed, RequestRefused


class Completer(Protocol):
    async def complete(self, messages: list[dict], params: dict[str, Any]) -> tuple[dict, bool]: ...


Parse = Callable[[str | None], tuple[str | None, str | None]]  # content -> (label, None) or (None, reason)
Logprobs = Callable[[dict, str], dict[str, float] | None]  # (response, label) -> distribution, if the response has logprobs


@dataclass(frozen=True)
class Sample:
    """One sampled answer: its label (None: unparsed, with the reason), its logprob distribution if any, the
    answer's text and the asks it took (1 + re-asks)."""

    label: str | None
    reason: str | None
    probs: dict[str, float] | None
    content: str
    attempts: int


@dataclass(frozen=True)
class Judgement:
    """What the samples say about one item: a label and a distribution over `labels`, or None with a reason."""

    label: str | None
    probs: dict[str, float] | None
    reason: str | None
    detail: dict[str, Any] = field(default_factory=dict)


async def sample_answers(
    client: Completer, messages: list[dict], params: dict[str, Any], *, parse: Parse, samples: int = 1,
    answer_retries: int = 0, correction: dict | None = None, logprobs: Logprobs | None = None,
) -> list[Sample]:  # fmt: skip
    """`samples` answers to `messages` (sample i sends `seed: i` when samples > 1, so each is its own cache entry).

    Every sample is asked once first; then each unparsed answer is re-asked with `correction` up to
    `answer_retries` times. A request that fails after the client's retries is a sample with reason
    `retries_exhausted`, one the server refuses for its content `http_400` (413, 422); any other refusal (401,
    403, 404) is raised (RequestRefused): the caller stops. BudgetExhausted is raised only while a sample has no
    answer yet: once every sample has answered, a cap that blocks a re-ask leaves that answer as it is."""
    asked = []
    for i in range(samples):
        sample_params = params | {"seed": i} if samples > 1 else params
        asked.append((sample_params, *await _ask(client, messages, sample_params, parse, logprobs, 1)))
    out = []
    for sample_params, sample, answered in asked:
        conversation = messages
        while answered and sample.label is None and correction is not None and sample.attempts <= answer_retries:
            conversation = [*conversation, {"role": "assistant", "content": sample.content}, correction]
            try:
                sample, answered = await _ask(client, conversation, sample_params, parse, logprobs, sample.attempts + 1)
            except BudgetExhausted:
                break
        out.append(sample)
    return out


async def _ask(client: Completer, conversation: list[dict], params: dict[str, Any], parse: Parse, logprobs: Logprobs | None,
               attempt: int) -> tuple[Sample, bool]:  # fmt: skip
    """One ask: (the sample, whether the server answered it)."""
    try:
        response, _ = await client.complete(conversation, params)
    except CallFailed as exc:
        return Sample(None, "retries_exhausted", None, str(exc)[:200], attempt), False
    except RequestRefused as exc:
        if exc.status not in ITEM_REFUSALS:  # the client itself is refused (401, 403, 404): the caller stops
            raise
        return Sample(None, f"http_{exc.status}", None, exc.message[:200], attempt), False
    content = (response["choices"][0].get("message") or {}).get("content") or ""
    label, reason = parse(content)
    probs = logprobs(response, label) if logprobs and label is not None else None
    return Sample(label, reason, probs, content, attempt), True


def reasoning_tail(content: str, lines: int = 3) -> str:
    """The last `lines` non-empty lines before the final answer line (what a reviewer reads of a chain of thought)."""
    kept = [line.strip() for line in content.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines - 1 : -1])[:400]


def self_consistency(answers: Sequence[Sample], labels: Sequence[str]) -> Judgement:
    """One sample: its label (the answer given) with its logprob distribution (else all mass on it). Several: the majority label and
    the vote shares of the parsed samples (ties go to the earlier label). None parsed: None with the most
    common reason. `detail` keeps the answer, the parsed, sampled and asked counts and, for long answers, the reasoning tail."""
    parsed = [a for a in answers if a.label is not None]
    # asks: requests including re-asks; whether they came from the cache is the ledger's to say
    detail: dict[str, Any] = {"parsed": len(parsed), "samples": len(answers), "asks": sum(a.attempts for a in answers)}
    if not parsed:
        reason = Counter(a.reason for a in answers).most_common(1)[0][0] if answers else "no_answer"
        last = answers[-1].content[-200:] if answers else ""
        return Judgement(None, None, reason, detail | {"last_answer": last})
    if len(answers) == 1 and parsed[0].probs:  # the label is the answer given; its distribution may put more mass elsewhere
        probs, label = dict(parsed[0].probs), parsed[0].label
    else:
        counts = Counter(a.label for a in parsed)
        probs = {label: round(counts[label] / len(parsed), 6) for label in labels}
        label = max(labels, key=lambda name: (probs.get(name, 0.0), -list(labels).index(name)))
    first = next(a for a in parsed if a.label == label)
    if "\n" in first.content.strip():
        detail["reasoning"] = reasoning_tail(first.content)
    return Judgement(label, probs, None, detail | {"answer": label})
