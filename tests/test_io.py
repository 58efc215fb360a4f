import json
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import AnnotatorError, Task
from autoannotator.errors import InputWarning
from autoannotator.io import read_table, write_table
from autoannotator.items import items_from_frame, labeled_seed


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_round_trip_keeps_text_exactly(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"id": ["a", "b", "c"], "text": [" leading space", "ümlaut, \"quotes\"\nnewline", "007"]})
    path = write_table(frame, tmp_path / f"data{suffix}")
    back = read_table(path)
    assert back["text"].tolist() == frame["text"].tolist()
    assert back["id"].astype(str).tolist() == ["a", "b", "c"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = write_table(pd.DataFrame({"text": ["old"]}), tmp_path / "out.parquet")

    def disk_full(self, path, **kwargs) -> None:  # noqa: ANN001 (to_parquet's signature)
        Path(path).write_bytes(b"PAR1 half written")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(OSError):
        write_table(pd.DataFrame({"text": ["new"]}), target)
    assert read_table(target)["text"].tolist() == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(AnnotatorError, match="empty"):
        read_table(tmp_path / "empty.csv")


def test_header_only_file(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("text,label\n")
    with pytest.raises(AnnotatorError, match="no rows"):
        read_table(tmp_path / "h.csv")


def test_invalid_utf8_names_the_byte(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_bytes(b"text\nfine\ncaf\xe9 latin-1\n")
    with pytest.raises(AnnotatorError, match=r"not valid UTF-8 \(byte \d+"):
        read_table(tmp_path / "bad.csv")


def test_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match="unsupported file type '.xlsx'"):
        read_table(tmp_path / "data.xlsx")


def test_missing_text_column(task: Task) -> None:
    with pytest.raises(AnnotatorError, match=r"missing column\(s\) \['text'\]"):
        items_from_frame(pd.DataFrame({"id": ["1"], "body": ["x"]}), task)


def test_duplicate_ids_are_refused(task: Task) -> None:
    frame = pd.DataFrame({"id": ["1", "2", "1"], "text": ["a", "b", "c"]})
    with pytest.raises(AnnotatorError, match=r"duplicate ids in column 'id': \['1'\]"):
        items_from_frame(frame, task)


def test_empty_and_nan_texts_become_empty_strings(task: Task) -> None:
    frame = pd.DataFrame({"id": ["1", "2", "3"], "text": ["ok", None, float("nan")]})
    items = items_from_frame(frame, task)
    assert items.texts == ["ok", "", ""]


def test_seed_with_unknown_label_is_refused(task: Task) -> None:
    frame = pd.DataFrame({"text": ["a", "b"], "label": ["positive", "sarcastic"]})
    with pytest.raises(AnnotatorError, match="'sarcastic'"):
        labeled_seed(frame, task, label_column="label")


def test_seed_resolves_aliases_and_drops_empty_texts(task: Task) -> None:
    frame = pd.DataFrame({"text": ["a", "", "c"], "label": ["pos", "neg", "NEG"]})
    texts, labels = labeled_seed(frame, task, label_column="label")
    assert texts == ["a", "c"] and labels == ["positive", "negative"]


def test_seed_labels_given_as_numbers(tmp_path: Path) -> None:
    binary = Task.from_dict({"name": "b", "labels": [0, 1]})
    (tmp_path / "seed.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n{"text": "c", "label": 1.0}\n')
    assert labeled_seed(read_table(tmp_path / "seed.jsonl"), binary, label_column="label") == (["a", "b", "c"], ["1", "0", "1"])
    frame = pd.DataFrame({"text": ["a", "b"], "label": [1.0, float("nan")]})  # Parquet: a float column once a value is missing
    frame.to_parquet(tmp_path / "seed.parquet")
    with pytest.raises(AnnotatorError, match=r"labels \[''\]"):  # the missing label is named, the 1.0 is not
        labeled_seed(read_table(tmp_path / "seed.parquet"), binary, label_column="label")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_written_tables_get_the_usual_file_mode_not_a_private_one(tmp_path: Path, suffix: str) -> None:
    import os

    old = os.umask(0o022)
    try:
        path = write_table(pd.DataFrame({"text": ["a"]}), tmp_path / f"out{suffix}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # mkstemp alone leaves 0600


MIXED = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": [7, "plain text", ["a", 1], None],
                      "meta": [{"k": 1}, 2.5, True, "x"]})  # fmt: skip


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl", "out.parquet", "out_dataset"])
def test_mixed_type_columns_never_stop_a_write(tmp_path: Path, name: str) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = write_table(MIXED, tmp_path / name)
    back = read_table(path)
    assert back["id"].tolist() == ["a", "b", "c", "d"] and back["text"].tolist()[1] == "plain text"
    named = sorted(str(w.message).split("'")[1] for w in caught if issubclass(w.category, InputWarning))
    if name.endswith((".parquet", "_dataset")):  # Arrow needs one type per column: such a column is written as text
        assert named == ["meta", "text"] and back["text"].tolist()[0] == "7" and json.loads(back["text"].tolist()[2]) == ["a", 1]
        assert json.loads(back["meta"].tolist()[0]) == {"k": 1}
    else:
        assert named == []


def test_annotate_writes_a_mixed_type_text_column_to_parquet(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import EXAMPLE

    tweets = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:30]
    records = [{"id": i, "text": t} for i, t in zip(tweets.id, tweets.text)]
    records[0]["text"], records[1]["text"] = 12345, ["a", "list"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "x.parquet"
    run = subprocess.run([sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"), "--input",
                          str(tmp_path / "in.jsonl"), "--output", str(out), "--seed", str(EXAMPLE / "seed.csv"),
                          "--specialists", "tfidf,lexicon", "--reviewer", "none", "--quiet"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "warning: column 'text' holds mixed types" in run.stderr
    assert len(read_table(out)) == 30


@pytest.mark.parametrize(("name", "content"), [("dup.csv", "id,text,text\n1,a,b\n"), ("dup.jsonl", '{"id": "1", "text": "a", "text": "b"}\n')])
def test_a_column_named_twice_is_refused(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(AnnotatorError, match="'text' twice"):
        read_table(tmp_path / name)


def test_a_parquet_column_named_twice_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table([pa.array(["a", "b"]), pa.array(["c", "d"])], names=["text", "text"]), tmp_path / "dup.parquet")
    with pytest.raises(AnnotatorError, match="'text' twice"):
        read_table(tmp_path / "dup.parquet")


def test_a_duplicate_csv_header_is_one_line_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import EXAMPLE

    (tmp_path / "in.csv").write_text("id,text,text\n1,good day,bad day\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"), "--input",
                          str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv"), "--specialists", "lexicon", "--quiet"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 2 and "the column 'text' twice" in run.stderr and len(run.stderr.strip().splitlines()) == 1
