"""Strict extraction of a multiple-choice answer: a final `Answer:` line, a structured field, an exact option text."""

from __future__ import annotations

import math

import pytest

from autoannotator.llm.multiple_choice import build_choice_messages, extract_choice
from autoannotator.task import Example, Task

OPTIONS = ["21", "21.5", "None of these", "$67.40", "7"]


@pytest.mark.parametrize(
    ("content", "letter"),
    [
        ("The speed is 3 km/h, so 21.\nAnswer: A", "A"),
        ("reasoning...\n**Answer: (C)**", "C"),
        ("Final answer: D)", "D"),
        ("so it is\nAnswer: B) 21.5", "B"),
        ('{"answer": "E"}', "E"),
        ('Sure: {"answer": "21.5"}', "B"),
        ('{"answer": "A"} was my first guess\nAnswer: B', "B"),
        ("Answer: $67.40", "D"),
        ("Answer: none of these", "C"),
        ("C", "C"),
        ("The answer is: E.", "E"),
    ],
)
def test_answers_that_name_one_option(content: str, letter: str) -> None:
    assert extract_choice(content, OPTIONS) == (letter, None)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "no_answer"),
        (None, "no_answer"),
        ("I think it is C because 21 is odd.", "no_answer_line"),
        ("Answer: C\nbut maybe D", "no_answer_line"),
        ("Answer: 22", "answer_unparsed"),
        ("Answer: C or D", "answer_unparsed"),
        ("Answer: B) 22", "answer_unparsed"),
        ("Answer: F", "out_of_set"),
        ('{"answer": "G"}', "out_of_set"),
        ('{"answer": 3}', "answer_unparsed"),
    ],
)
def test_anything_else_abstains_with_its_reason(content: str | None, reason: str) -> None:
    assert extract_choice(content, OPTIONS) == (None, reason)


def test_prompts_show_the_problem_and_the_answer_format() -> None:
    task = Task.from_dict({"name": "math", "type": "multiple_choice", "instruction": "Solve it.",
                           "examples": [{"text": "1+1?\nA) 2 B) 3", "label": "A", "rationale": "One and one is two."}]})  # fmt: skip
    cot = build_choice_messages(task, "2+2?\n\nOptions:\nA) 4\nB) 5", style="cot", examples=task.examples)[1]["content"]
    assert "One and one is two.\nAnswer: A" in cot and cot.rstrip().endswith("'Answer: <letter>'.")
    shot = build_choice_messages(task, "2+2?", style="k-shot", examples=task.examples, json_answer=True)[1]["content"]
    assert "One and one is two." not in shot and '{"answer": "<letter>"}' in shot


def test_the_reviewer_sees_what_the_pool_s_llms_answered() -> None:
    from autoannotator.llm.prompts import proposals_block
    from autoannotator.reviewers.llm import LLMReviewer, LLMSettings

    votes = {"qwen": {"label": "C", "p": 1.0, "answer": "C", "reasoning": "21 is odd\nso not B"},
             "smol": {"label": None, "p": 0.0, "reason": "no_answer_line"}, "tfidf": {"label": "A", "p": 0.6}}  # fmt: skip
    block = proposals_block(votes)
    assert block.splitlines()[1:] == ['- qwen: C (last reasoning: "21 is odd\\nso not B")', "- smol: no answer (no_answer_line)"]
    assert proposals_block({"tfidf": {"label": "A", "p": 0.6}}) is None  # classifier pools: the prompt is unchanged
    task = Task.from_dict({"name": "math", "type": "multiple_choice"})
    shown = build_choice_messages(task, "2+2?\n\nOptions:\nA) 4\nB) 5", style="zero-shot", proposals=block)[1]["content"]
    assert block in shown and shown.index("Problem:") < shown.index(block)
    sentiment = Task.from_dict({"name": "s", "labels": ["negative", "positive"]})
    reviewer = LLMReviewer(sentiment, LLMSettings(base_url="http://127.0.0.1:9/v1"))
    assert block in reviewer.messages("nice", votes)[1]["content"] and "proposed" not in reviewer.messages("nice")[1]["content"]


def test_letter_probabilities_from_logprobs_cover_only_the_item_s_letters() -> None:
    from autoannotator.llm.asking import letter_probs

    task = Task.from_dict({"name": "math", "type": "multiple_choice"})
    top = [{"token": "C", "logprob": -0.2}, {"token": "D", "logprob": -1.9}, {"token": "E", "logprob": -2.5}]
    response = {"choices": [{"message": {"content": '{"answer": "C"}'},
                             "logprobs": {"content": [{"token": '{"answer": "', "logprob": 0.0, "top_logprobs": []},
                                                      {"token": "C", "logprob": -0.2, "top_logprobs": top},
                                                      {"token": '"}', "logprob": 0.0, "top_logprobs": []}]}}]}  # fmt: skip
    probs = letter_probs(response, "C", task=task, n_options=4)  # the item has A-D: E's mass is dropped
    expected_c = math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.9))
    assert set(probs) == {"A", "B", "C", "D"} and probs["A"] == probs["B"] == 0.0
    assert probs["C"] == pytest.approx(expected_c, abs=1e-5) and probs["C"] + probs["D"] == pytest.approx(1.0)
    assert letter_probs({"choices": [{"message": {"content": "C"}}]}, "C", task=task, n_options=4) is None
