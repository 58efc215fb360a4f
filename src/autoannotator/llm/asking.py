"""How to ask an LLM about one item of either task type, and what its n answers say (shared by the `llm`
specialist and the LLM reviewer's self-consistency)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from autoannotator.choices import LETTERS, OptionsError, split_item
from autoannotator.llm.logprobs import label_probs_from_logprobs
from autoannotator.llm.multiple_choice import build_choice_messages, choice_schema, extract_choice
from autoannotator.llm.prompts import PromptStyle, build_messages, correction_message, label_schema, parse_label
from autoannotator.llm.sampling import Completer, Judgement, sample_answers, self_consistency
from autoannotator.task import Example, Task


def request_params(
    schema: dict, *, prompt: PromptStyle, structured: str, temperature: float, max_tokens: int | None, logprobs: bool
) -> dict[str, Any]:
    """Chat-completion parameters: the answer's JSON schema unless the prompt is cot, logprobs when asked.
    `max_tokens` defaults to 24 tokens, 400 for cot."""
    cot = prompt == "cot"
    params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens or (400 if cot else 24)}
    if not cot and structured == "json_schema":
        params["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}}
    elif not cot and structured == "json_object":
        params["response_format"] = {"type": "json_object", "schema": schema}
    if logprobs:
        params |= {"logprobs": True, "top_logprobs": 5}
    return params


def parse_label_or_reason(content: str | None, task: Task) -> tuple[str | None, str | None]:
    """(label, None) for a classification answer, else (None, `no_answer` | `out_of_set`)."""
    label = parse_label(content, task)
    return (label, None) if label else (None, "out_of_set" if content and content.strip() else "no_answer")


def letter_probs(response: dict, letter: str, *, task: Task, n_options: int) -> dict[str, float] | None:
    """The logprob distribution over the item's own letters (A .. the n-th), renormalized; None without logprobs."""
    probs = label_probs_from_logprobs(response, letter, task)
    kept = {k: v for k, v in (probs or {}).items() if k in LETTERS[:n_options]}
    total = sum(kept.values())
    return {k: round(v / total, 6) for k, v in kept.items()} if total > 0 else None


async def judge(
    client: Completer, task: Task, text: str, *, prompt: PromptStyle, examples: Sequence[Example], structured: str,
    samples: int, temperature: float, max_tokens: int | None, logprobs: bool, answer_retries: int, proposals: str | None = None,
) -> Judgement:  # fmt: skip
    """Ask about one item `samples` times and aggregate (`sampling.self_consistency`).

    Classification: the task's labels, parsed by `prompts.parse_label`. Multiple choice (`text` rendered by
    `choices.render_item`): the item's letters, extracted by `multiple_choice.extract_choice`; a text without
    parsable options is `options_unparsed` without a request. Logprobs are asked for only with one sample.
    `proposals`: other models' answers shown in the prompt (the reviewer's view of the pool)."""
    json_answer = structured != "none"
    logprobs = logprobs and samples == 1
    if task.type == "multiple_choice":
        try:
            _, options = split_item(text)
        except OptionsError:
            return Judgement(None, None, "options_unparsed")
        letters = ", ".join(LETTERS[: len(options)])
        messages = build_choice_messages(task, text, style=prompt, examples=examples, json_answer=json_answer, proposals=proposals)
        schema, parse = choice_schema(len(options)), partial(extract_choice, options=options)
        read_logprobs = partial(letter_probs, task=task, n_options=len(options))
        correction = {"role": "user", "content": f"End with one line 'Answer: <letter>', the letter one of {letters}."}
    else:
        messages = build_messages(task, text, style=prompt, examples=examples, json_answer=json_answer, proposals=proposals)
        schema, parse = label_schema(task), partial(parse_label_or_reason, task=task)
        read_logprobs, correction = partial(label_probs_from_logprobs, task=task), correction_message(task)
    params = request_params(schema, prompt=prompt, structured=structured, temperature=temperature, max_tokens=max_tokens, logprobs=logprobs)
    answers = await sample_answers(client, messages, params, parse=parse, samples=samples, answer_retries=answer_retries,
                                   correction=correction, logprobs=read_logprobs if logprobs else None)  # fmt: skip
    return self_consistency(answers, task.label_names)
