"""Multiple-choice options: parsed from a list or an `A) … B) …` string, malformed ones refused, rendered and read back."""

from __future__ import annotations

import pandas as pd
import pytest

from autoannotator.choices import OptionsError, parse_options, render_item, split_item
from autoannotator.errors import AnnotatorError
from autoannotator.items import items_from_frame, labeled_seed
from autoannotator.task import Task


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("A)21 B)21.5 C)22 D)22.5 E)23", ["21", "21.5", "22", "22.5", "23"]),
        ("A)5(√3 + 1) B)6(√3 + √2) C)None of these", ["5(√3 + 1)", "6(√3 + √2)", "None of these"]),
        ("(A) 1 hour (B) 2 hours", ["1 hour", "2 hours"]),
        ("A) x\nB) y", ["x", "y"]),
        (["A)21", "B)21.5"], ["21", "21.5"]),
        (["21", "twenty two"], ["21", "twenty two"]),
        ('["A)$61", "B)$65"]', ["$61", "$65"]),
        (("red", "blue", "green"), ["red", "blue", "green"]),
    ],
)
def test_options_from_lists_and_lettered_strings(value: object, expected: list[str]) -> None:
    assert parse_options(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, float("nan"), "", "21 or 22", "B)21 C)22", "A)21 C)22", "A)21 B)", "A)only one", ["A)21", "22"],
     ["B)21", "A)22"], 42, "A)1 B)2 A)3"],
)  # fmt: skip
def test_malformed_options_are_refused(value: object) -> None:
    with pytest.raises(OptionsError):
        parse_options(value)


def test_rendered_item_reads_back() -> None:
    text = render_item("What is 2 + 2?\nOptions: think", ["3", "4 (four)"])
    assert split_item(text) == ("What is 2 + 2?\nOptions: think", ["3", "4 (four)"])
    with pytest.raises(OptionsError):
        split_item("a plain text")


def test_multiple_choice_task_defaults_to_letters_and_checks_them() -> None:
    task = Task.from_dict({"name": "math", "type": "multiple_choice"})
    assert task.label_names == ["A", "B", "C", "D", "E"]
    assert Task.from_dict({"name": "m", "type": "multiple_choice", "labels": ["A", "B", "C"]}).label_names == ["A", "B", "C"]
    with pytest.raises(AnnotatorError, match="option letters"):
        Task.from_dict({"name": "m", "type": "multiple_choice", "labels": ["yes", "no"]})
    with pytest.raises(AnnotatorError, match="type"):
        Task.from_dict({"name": "m", "type": "ranking", "labels": ["a", "b"]})
    assert Task.from_dict({"name": "t", "labels": ["a", "b"]}).type == "classification"


def test_items_render_questions_and_mark_unparsable_options() -> None:
    task = Task.from_dict({"name": "math", "type": "multiple_choice"})
    frame = pd.DataFrame({"question": ["2 + 2?", "3 + 3?", "4 + 4?"], "options": ["A)3 B)4", "no options here", ["6", "8"]]})
    items = items_from_frame(frame, task)
    assert items.texts[0] == "2 + 2?\n\nOptions:\nA) 3\nB) 4"
    assert items.texts[1] == "" and items.unusable == {1: "options_unparsed"}
    assert split_item(items.texts[2])[1] == ["6", "8"]
    with pytest.raises(AnnotatorError, match="options"):
        items_from_frame(frame.drop(columns=["options"]), task)
    texts, labels = labeled_seed(frame.assign(gold=["B", "A", "A"]), task, label_column="gold")
    assert labels == ["B", "A"] and texts[1].endswith("B) 8")  # the unparsable row is not a training example
