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
