"""Files in and out: every text survives every input -> output format pair of a real run; a byte-order
mark is accepted in every text format; rows merged by an unclosed quote are warned about."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoannotator import Annotator, Task
from autoannotator.errors import InputWarning
from autoannotator.io import read_table, write_table

FORMATS = (".csv", ".jsonl", ".parquet")
BINARY = Task.from_dict({"name": "polarity", "labels": ["negative", "positive"]})
LEXICON = [{"kind": "lexicon", "options": {"label_map": {"neutral": None}}}]
TRICKY = ["\r", "\n", "\r\n", "\n\r", '"', '""', ",", "'", "\t", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\ufeff", " ", "NA", "null", "1e3"]
# Random Unicode (no NUL, no lone surrogates) mixed with the characters that break CSV and line-based formats.
TEXT = st.lists(
    st.one_of(st.sampled_from(TRICKY), st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)),
    min_size=1, max_size=6,
).map("".join).filter(lambda t: t != "")  # fmt: skip


@settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, min_size=1, max_size=4), pair=st.sampled_from(list(itertools.product(FORMATS, FORMATS))))
def test_every_text_survives_every_input_to_output_format_pair(texts: list[str], pair: tuple[str, str]) -> None:
    source, target = pair
    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.DataFrame({"text": texts, "note": [f"n{i}" for i in range(len(texts))]})
        path = write_table(frame, Path(tmp) / f"in{source}")
        assert read_table(path)["text"].tolist() == texts
        out = Path(tmp) / f"out{target}"
        Annotator(BINARY, specialists=LEXICON, run_dir=Path(tmp) / "run", progress=False).annotate(path, output=out)
        back = read_table(out)
    assert back["text"].tolist() == texts and back["note"].tolist() == frame["note"].tolist()
    assert set(back["label_source"]) <= {"consensus", "unresolved"}  # never a text fragment spilled into a column


def test_a_lone_carriage_return_stays_inside_its_csv_field(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "text": ["part one\rpart two", "second"], "gold": ["positive", "negative"]})
    write_table(frame, tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    Annotator(BINARY, specialists=LEXICON, run_dir=tmp_path / "run", progress=False).annotate(tmp_path / "in.csv", output=out)
    back = read_table(out)
    assert len(back) == 2 and back["text"].tolist() == frame["text"].tolist()
    assert set(back["label_source"]) <= {"consensus", "unresolved"}


BOM = "\ufeff"


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("table.csv", "id,text\n1,hello\n"),
        ("table.jsonl", '{"id": 1, "text": "hello"}\n'),
        ("table.json", '{"id": 1, "text": "hello"}\n'),
    ],
)
def test_a_table_with_a_byte_order_mark_reads_like_one_without(tmp_path: Path, name: str, body: str) -> None:
    (tmp_path / name).write_text(BOM + body, encoding="utf-8")
    frame = read_table(tmp_path / name)
    assert list(frame.columns) == ["id", "text"] and frame["text"].tolist() == ["hello"]


def test_other_text_files_with_a_byte_order_mark(task: Task, tmp_path: Path) -> None:
    from autoannotator.controller.catalog import user_catalog
    from autoannotator.controller.plan import load_pipeline
    from autoannotator.llm.prices import PriceTable

    (tmp_path / "task.yaml").write_text(BOM + "name: t\nlabels: [negative, positive]\n", encoding="utf-8")
    (tmp_path / "pipeline.yaml").write_text(BOM + "task: task.yaml\nspecialists:\n  - {kind: tfidf}\n", encoding="utf-8")
    assert load_pipeline(tmp_path / "pipeline.yaml")[1].label_names == ["negative", "positive"]
    (tmp_path / "prices.yaml").write_text(BOM + "my-model: {input: 1.0, output: 2.0}\n", encoding="utf-8")
    assert PriceTable.load(tmp_path / "prices.yaml").cost("my-model", 1_000_000, 0) == pytest.approx(1.0)
    model = tmp_path / "models" / "mine"
    model.mkdir(parents=True)
    (model / "config.json").write_text(BOM + json.dumps({"id2label": {"0": "negative", "1": "positive"}}), encoding="utf-8")
    (model / "README.md").write_text(BOM + "Sentiment of product reviews.\n", encoding="utf-8")
    entries = user_catalog(tmp_path / "models")
    assert [e.labels for e in entries] == [["negative", "positive"]] and not entries[0].description.startswith(BOM)
    from autoannotator.specialists import create_specialist, load_specialist

    saved = create_specialist("tfidf", task).fit(["good", "bad", "meh"], ["positive", "negative", "neutral"]).save(tmp_path / "saved")
    manifest = saved / "specialist.json"
    manifest.write_text(BOM + manifest.read_text(encoding="utf-8"), encoding="utf-8")  # edited by hand in an editor that adds one
    assert load_specialist(saved, task).predict_proba(["good"]).shape == (1, 3)
    assert create_specialist("saved", task, path=str(saved)).predict_proba(["good"]).shape == (1, 3)


MERGED = 'id,text,label\ns1,"so happy with this café,positive\ns2,terrible service,negative\ns3,loved it,positive\ns4,meh",neutral\ns5,ok,neutral\n'


def test_rows_merged_by_an_unclosed_quote_are_warned_about_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "merged.csv"
    path.write_text('id,text,label\ns0,"a text\nover two lines",positive\n' + MERGED.split("\n", 1)[1], encoding="utf-8")
    with pytest.warns(InputWarning, match=r"row 1 \(line 4\), column 'text', spans 4 lines of the file that each look like a row"):
        frame = read_table(path)
    assert frame["id"].tolist() == ["s0", "s1", "s5"]  # valid CSV: read as written, but the user is told


def test_a_quote_closed_on_the_next_line_is_warned_about_too(tmp_path: Path) -> None:
    (tmp_path / "two.csv").write_text('id,text,label\ns1,"so happy,positive\ns2,sad",negative\ns3,fine,neutral\n', encoding="utf-8")
    with pytest.warns(InputWarning, match=r"row 0 \(line 2\), column 'text', spans 2 lines"):
        assert read_table(tmp_path / "two.csv")["id"].tolist() == ["s1", "s3"]


@pytest.mark.parametrize(
    "text", ['"line one\nline two\nline three"', '"dear all,\nthanks, see you, bye\nme"', '"one\ntwo"', '"I agree, really\nwell, maybe"']
)
def test_texts_that_span_lines_on_their_own_are_not_warned_about(tmp_path: Path, text: str) -> None:
    (tmp_path / "ok.csv").write_text(f"id,text,label\ns1,{text},positive\ns2,plain,negative\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        assert len(read_table(tmp_path / "ok.csv")) == 2


def test_the_cli_prints_the_merged_rows_warning_as_one_line(tmp_path: Path) -> None:
    (tmp_path / "merged.csv").write_text(MERGED, encoding="utf-8")
    (tmp_path / "task.yaml").write_text("name: t\nlabels: [negative, neutral, positive]\nid_column: id\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "autoannotator", "annotate", "--task", str(tmp_path / "task.yaml"), "--input",
                          str(tmp_path / "merged.csv"), "--output", str(tmp_path / "out.csv"), "--specialists", "lexicon", "--quiet"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    warning = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "row 0 (line 2)" in warning[0] and "unclosed quote" in warning[0]


@pytest.mark.parametrize(("body", "message"), [('{"text": "a"}\n{"text": "b"\n', "line 2 is not JSON"), ('{"text": "a"}\n["b"]\n', "line 2 is a JSON list, not an object")])
def test_a_broken_jsonl_line_is_named(tmp_path: Path, body: str, message: str) -> None:
    from autoannotator import AnnotatorError

    (tmp_path / "bad.jsonl").write_text(body, encoding="utf-8")
    with pytest.raises(AnnotatorError, match=message):
        read_table(tmp_path / "bad.jsonl")
