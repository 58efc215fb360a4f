from pathlib import Path

import pytest

from autoannotator import AnnotatorError, Task


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_task_loads(task: Task) -> None:
    assert task.label_names == ["negative", "neutral", "positive"]
    assert task.text_column == "text" and task.id_column == "id"
    assert task.resolve_label(" POS ") == "positive"
    assert task.resolve_label("unknown") is None


def test_labels_as_mapping_of_descriptions(tmp_path: Path) -> None:
    task = Task.from_yaml(write(tmp_path, "name: t\nlabels:\n  spam: unwanted mail\n  ham: wanted mail\n"))
    assert task.label_names == ["spam", "ham"]
    assert task.labels[0].description == "unwanted mail"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: t\nlabels: []\n", "no labels"),
        ("name: t\nlabels: [a]\n", "at least two labels"),
        ("name: t\nlabels: [a, b, a]\n", "duplicate label 'a'"),
        ("name: t\nlabels:\n  - {name: a, aliases: [x]}\n  - {name: b, aliases: [X]}\n", "names two labels"),
        ("name: t\nlabels: [a, b]\nexamples:\n  - {text: hi, label: c}\n", "example label 'c'"),
        ("name: t\nlabels: [a, b]\ncolour: red\n", "colour"),
        ("labels: [a, b]\n", "name"),
        ("name: t\nlabels: [a, b\n", "not valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
    ],
)
def test_invalid_task_files_give_one_clear_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(AnnotatorError) as info:
        Task.from_yaml(write(tmp_path, body))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_task_file(tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match="task file not found"):
        Task.from_yaml(tmp_path / "nope.yaml")


def test_numeric_labels_are_read_as_their_string_form(tmp_path: Path) -> None:
    import numpy as np

    task = Task.from_yaml(write(tmp_path, "name: t\nlabels: [0, 1]\nexamples:\n  - {text: fine, label: 1}\n"))
    assert task.label_names == ["0", "1"] and task.examples[0].label == "1"
    for value in (1, 1.0, np.int64(1), np.float64(1.0), "1", " 1 "):
        assert task.resolve_label(value) == "1", value
    for value in ("1.0", " 1.00 ", "1e0"):  # a CSV cell holding a number names the label that number names
        assert task.resolve_label(value) == "1", value
    assert task.resolve_label("0.0") == "0"
    for value in (2, 0.5, True, float("nan"), None, [1], {"label": 1}, "1.5", "nan", "inf", ""):
        assert task.resolve_label(value) is None, value
    described = Task.from_yaml(write(tmp_path, "name: t\nlabels:\n  0: bad\n  1: good\n"))
    assert described.label_names == ["0", "1"] and described.labels[1].description == "good"
    aliased = Task.from_dict({"name": "t", "labels": [{"name": "negative", "aliases": [0]}, {"name": "positive", "aliases": [1]}]})
    assert aliased.resolve_label(0.0) == "negative"


def test_a_yaml_boolean_label_is_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match="labels.0.name: True is a YAML boolean, not a label: quote it"):
        Task.from_yaml(write(tmp_path, "name: t\nlabels: [yes, no]\n"))


def test_a_task_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_bytes("\ufeffname: t\nlabels: [spam, ham]\n".encode())
    assert Task.from_yaml(path).name == "t"
