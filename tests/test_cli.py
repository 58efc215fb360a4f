"""The CLI as a user runs it: real subprocesses, one-line errors, the annotate -> evaluate flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import EXAMPLE


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoannotator", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture()
def tweets_csv(tmp_path: Path) -> Path:
    path = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:150].to_csv(path, index=False)
    return path


def annotate_args(tweets: Path, out: Path, *extra: str) -> list[str]:
    return ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tweets), "--output", str(out),
            "--seed", str(EXAMPLE / "seed.csv"), "--specialists", "tfidf,lexicon", "--quiet", *extra]  # fmt: skip


def test_annotate_then_evaluate(tweets_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "labeled.jsonl"
    run = cli(*annotate_args(tweets_csv, out, "--reviewer", "gold:gold_label", "--summary-json", str(tmp_path / "s.json")))
    assert run.returncode == 0, run.stderr
    assert "labels per route" in run.stdout and "consensus" in run.stdout and "gold" in run.stdout
    assert (tmp_path / "labeled.jsonl.run" / "run.sqlite").is_file()
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["n_items"] == 150 and sum(summary["counts"].values()) == 150
    labeled = pd.read_json(out, lines=True)
    assert set(labeled["label_source"]) <= {"consensus", "gold"}
    scores = cli("evaluate", str(out), "--gold", "gold_label", "--task", str(EXAMPLE / "task.yaml"), "--json", str(tmp_path / "e.json"))
    assert scores.returncode == 0, scores.stderr
    for heading in ("accuracy", "macro-F1", "per label_source", "confusion matrix"):
        assert heading in scores.stdout
    evaluation = json.loads((tmp_path / "e.json").read_text())
    assert evaluation["route_accuracy"]["gold"] == 1.0
    assert evaluation["route_counts"] == summary["counts"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (lambda p: p.write_text("id,body\n1,hello\n"), "missing column(s) ['text']"),
        (lambda p: p.write_bytes(b"id,text\n1,caf\xe9\n"), "not valid UTF-8"),
        (lambda p: p.write_text("id,text\n1,a\n1,b\n"), "duplicate ids"),
    ],
)
def test_bad_input_is_one_clear_line(tweets_csv: Path, tmp_path: Path, mutate, message: str) -> None:
    mutate(tweets_csv)
    run = cli(*annotate_args(tweets_csv, tmp_path / "o.csv"))
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()


def test_bad_task_file_is_one_clear_line(tweets_csv: Path, tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text("name: t\nlabels: [a]\n")
    run = cli("annotate", "--task", str(task), "--input", str(tweets_csv), "--output", str(tmp_path / "o.csv"))
    assert run.returncode == 2 and "at least two labels" in run.stderr and "Traceback" not in run.stderr


def test_evaluate_refuses_a_missing_gold_column(tweets_csv: Path, tmp_path: Path) -> None:
    run = cli("evaluate", str(tweets_csv), "--gold", "truth")
    assert run.returncode == 2 and "missing column(s) ['truth'" in run.stderr


def test_evaluate_names_the_output_columns_a_file_lacks(tweets_csv: Path, tmp_path: Path) -> None:
    """Without --gold (the audit's estimate) or with an `audited` column, a file that is not annotate's output
    is refused in one line naming the missing columns, not a KeyError traceback."""
    partial = tmp_path / "partial.csv"
    pd.read_csv(tweets_csv, dtype=str).assign(audited="True").to_csv(partial, index=False)
    for args in ([], ["--gold", "gold_label"]):
        run = cli("evaluate", str(partial), *args)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "missing column(s) ['label', 'label_source', 'consensus_label', 'reviewed_label']" in run.stderr
    bare = cli("evaluate", str(tweets_csv))  # no output column at all
    assert bare.returncode == 2 and "missing column(s) ['label', 'label_source', 'consensus_label', 'reviewed_label']" in bare.stderr


def test_numeric_labels_from_yaml_jsonl_and_a_gold_column_with_gaps(tmp_path: Path) -> None:
    tweets = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:160]
    tweets = tweets[tweets.gold_label != "neutral"]
    seed = pd.read_csv(EXAMPLE / "seed.csv", dtype=str)
    seed = seed[seed.label != "neutral"]
    as_number = {"negative": 0, "positive": 1}
    # JSONL gives numbers; a missing gold value turns the column into floats (1.0) when pandas reads it.
    gold = [as_number[g] for g in tweets.gold_label]
    gold[0] = None
    pd.DataFrame({"id": tweets.id, "text": tweets.text, "gold": gold}).to_json(tmp_path / "in.jsonl", orient="records", lines=True)
    pd.DataFrame({"text": seed.text, "label": seed.label.map(as_number)}).to_json(tmp_path / "seed.jsonl", orient="records", lines=True)
    (tmp_path / "task.yaml").write_text(
        "name: polarity\ntext_column: text\nid_column: id\nlabels: [0, 1]\nspecialists:\n  - {kind: tfidf}\n"
        "  - {kind: lexicon, options: {label_map: {negative: 0, neutral: null, positive: 1}}}\n"
    )
    out = tmp_path / "out.jsonl"
    run = cli("annotate", "--task", str(tmp_path / "task.yaml"), "--input", str(tmp_path / "in.jsonl"), "--output", str(out),
              "--seed", str(tmp_path / "seed.jsonl"), "--reviewer", "gold:gold", "--quiet")  # fmt: skip
    assert run.returncode == 0, run.stderr
    scores = cli("evaluate", str(out), "--gold", "gold", "--json", str(tmp_path / "e.json"))
    assert scores.returncode == 0, scores.stderr
    evaluation = json.loads((tmp_path / "e.json").read_text())
    assert evaluation["n_items"] == len(tweets) - 1 and evaluation["route_accuracy"]["gold"] == 1.0
    assert set(evaluation["labels"]) <= {"0", "1", "(unresolved)"} and evaluation["accuracy"] > 0.7


def test_numeric_labels_written_as_floats_in_csv_seed_and_gold(tmp_path: Path) -> None:
    """A CSV seed and gold column holding "1.0"/"0.0" (a float column saved by pandas) name the labels 1 and 0."""
    tweets = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:120]
    tweets = tweets[tweets.gold_label != "neutral"]
    seed = pd.read_csv(EXAMPLE / "seed.csv", dtype=str)
    seed = seed[seed.label != "neutral"]
    as_float = {"negative": "0.0", "positive": "1.0"}
    pd.DataFrame({"id": tweets.id, "text": tweets.text, "gold": tweets.gold_label.map(as_float)}).to_csv(tmp_path / "in.csv", index=False)
    pd.DataFrame({"text": seed.text, "label": seed.label.map(as_float)}).to_csv(tmp_path / "seed.csv", index=False)
    (tmp_path / "task.yaml").write_text("name: polarity\ntext_column: text\nid_column: id\nlabels: [0, 1]\nspecialists:\n  - {kind: tfidf}\n"
                                       "  - {kind: lexicon, options: {label_map: {negative: 0, neutral: null, positive: 1}}}\n")
    out = tmp_path / "out.csv"
    run = cli("annotate", "--task", str(tmp_path / "task.yaml"), "--input", str(tmp_path / "in.csv"), "--output", str(out),
              "--seed", str(tmp_path / "seed.csv"), "--reviewer", "gold:gold", "--quiet")  # fmt: skip
    assert run.returncode == 0, run.stderr
    labeled = pd.read_csv(out, dtype=str)
    assert set(labeled.label_source) <= {"consensus", "gold"} and labeled.label.isin(["0", "1"]).all()  # no out_of_set
    scores = cli("evaluate", str(out), "--gold", "gold", "--json", str(tmp_path / "e.json"))
    assert scores.returncode == 0, scores.stderr
    evaluation = json.loads((tmp_path / "e.json").read_text())
    assert set(evaluation["labels"]) == {"0", "1"} and evaluation["route_accuracy"]["gold"] == 1.0


def test_evaluate_refuses_a_free_text_gold_column(tmp_path: Path) -> None:
    tweets = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:50]
    labeled = tmp_path / "labeled.csv"
    pd.DataFrame({"text": tweets.text, "label": tweets.gold_label, "label_source": "consensus"}).to_csv(labeled, index=False)
    run = cli("evaluate", str(labeled), "--gold", "text")
    assert run.returncode == 2 and "50 different values in 50 rows" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert "confusion" not in run.stdout.lower()
    with_task = cli("evaluate", str(labeled), "--gold", "text", "--task", str(EXAMPLE / "task.yaml"))
    assert with_task.returncode == 2 and "50 of 50 values are not labels" in with_task.stderr
    # gold labels the run never predicted are still gold labels: no task, no refusal
    one_class = pd.DataFrame({"text": tweets.text, "label": "positive", "label_source": "consensus", "gold": tweets.gold_label})
    one_class.to_csv(labeled, index=False)
    assert cli("evaluate", str(labeled), "--gold", "gold").returncode == 0


def test_on_off_flags_show_no_value_in_help() -> None:
    """A bool option is a plain flag (`--require-better-reviewer`, not `--require-better-reviewer <bool>`) in every
    command's help; typer's own --help line is the only one left with a type."""
    import typer

    from autoannotator.cli import app

    commands = typer.main.get_command(app).commands
    flags = [(name, p.opts[0]) for name, command in commands.items() for p in command.params if getattr(p, "is_flag", False) and p.name != "help"]
    assert ("annotate", "--require-better-reviewer") in flags and ("review", "--serve") in flags
    for name in sorted({name for name, _ in flags}):
        shown = subprocess.run([sys.executable, "-m", "autoannotator", name, "--help"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "200"}).stdout  # fmt: skip
        typed = [line for line in shown.splitlines() if "<bool>" in line and "--help" not in line]
        assert not typed, (name, typed)


def test_annotate_help_names_every_reviewer_kind() -> None:
    import typer

    from autoannotator.cli import app

    annotate = typer.main.get_command(app).commands["annotate"]
    reviewer = next(p for p in annotate.params if p.name == "reviewer")
    assert all(kind in reviewer.help for kind in ("none", "gold:COLUMN", "llm", "human"))


@pytest.mark.parametrize(("args", "says"), [
    (["--target-accuracy", "abc"], "error: Invalid value for '--target-accuracy': Input should be a valid number"),
    (["--reviewer-probe", "-1"], "error: Invalid value for '--reviewer-probe': Input should be greater than or equal to 0"),
    (["--no-such-flag"], "error: No such option: --no-such-flag"),
])  # fmt: skip
def test_a_bad_flag_or_value_is_one_line(args: list[str], says: str, tmp_path: Path) -> None:
    """Click's usage errors (a value of the wrong type, out of range, an unknown flag) print one `error:` line
    naming the command's help, exit 2, instead of a box of five."""
    done = cli("annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(EXAMPLE / "tweets.csv"), "--output", str(tmp_path / "o.csv"), *args)
    assert done.returncode == 2 and done.stderr.startswith(says), done.stderr
    assert done.stderr.strip().endswith("autoannotator annotate --help`)") and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()
