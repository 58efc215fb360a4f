"""The run options: grouped help panels, and `annotate --config pipeline.yaml` with flags as overrides."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from autoannotator import AnnotatorError
from autoannotator.cli_options import RunOptions, default_options, resolve_run
from tests.conftest import EXAMPLE

PANELS = {"Input and output": "--output", "Specialists": "--specialists", "Routing": "--epsilon", "Reviewer": "--reviewer",
          "LLM": "--llm-model", "Refinement": "--beta", "Execution": "--chunk-size"}  # fmt: skip


def cli(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"COLUMNS": "200", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "autoannotator", *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """The example's task and seed, 120 tweets, and a pipeline file: tfidf + lexicon, gold reviewer, refinement."""
    shutil.copy(EXAMPLE / "task.yaml", tmp_path / "task.yaml")
    shutil.copy(EXAMPLE / "seed.csv", tmp_path / "seed.csv")
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:120].to_csv(tmp_path / "tweets.csv", index=False)
    spec = {"task": "task.yaml", "seed": "seed.csv", "specialists": [{"kind": "tfidf"}, {"kind": "lexicon"}],
            "consensus": {"rule": "margin", "epsilon": 0.3}, "chunk_size": 64,
            "reviewer": {"spec": "gold:gold_label", "options": {"model": "m", "prompt": "k-shot", "shots": 3}},
            "refine": {"beta": 500, "replay": 0.1}}  # fmt: skip
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def options(**given: object) -> RunOptions:
    return RunOptions(default_options() | given, frozenset(given))


def test_help_groups_the_options_in_panels() -> None:
    shown = cli("annotate", "--help")
    assert shown.returncode == 0, shown.stderr
    boxes = re.split(r"╭─ ", shown.stdout)[1:]
    by_title = {box.split(" ─", 1)[0]: box for box in boxes}
    for title, flag in PANELS.items():
        assert title in by_title, list(by_title)
        assert re.search(rf"{flag}\s", by_title[title]), f"{flag} not in the {title} panel"
    assert "--llm-model" not in by_title["Routing"] and "--epsilon" not in by_title["LLM"]


def test_config_gives_the_settings_and_given_flags_override(project: Path) -> None:
    plan = resolve_run(options(config=project / "pipeline.yaml", input=project / "tweets.csv", output=project / "o.csv"))
    kwargs = plan.kwargs
    assert plan.task.name == "tweet-sentiment" and plan.seed == project / "seed.csv"
    assert [s.kind for s in kwargs["specialists"]] == ["tfidf", "lexicon"]
    # the file wins over the flags' defaults (reviewer none, rule vote, chunk size 512) ...
    assert (kwargs["reviewer"], kwargs["rule"], kwargs["epsilon"], kwargs["chunk_size"]) == ("gold:gold_label", "margin", 0.3, 64)
    assert kwargs["reviewer_options"] == {"model": "m", "prompt": "k-shot", "shots": 3}
    assert kwargs["refine"]["beta"] == 500 and kwargs["refine"]["replay"] == 0.1
    # ... and a flag the user gave wins over the file, even when it equals the flag's default
    plan = resolve_run(options(config=project / "pipeline.yaml", input=project / "tweets.csv", output=project / "o.csv",
                               reviewer="none", rule="vote", epsilon=0.5, chunk_size=512, llm_prompt="zero-shot",
                               specialists="lexicon", replay=0.7, seed=project / "other.csv"))  # fmt: skip
    kwargs = plan.kwargs
    assert (kwargs["reviewer"], kwargs["rule"], kwargs["epsilon"], kwargs["chunk_size"]) == ("none", "vote", 0.5, 512)
    assert kwargs["reviewer_options"] == {"model": "m", "prompt": "zero-shot", "shots": 3}
    assert kwargs["specialists"] == ["lexicon"] and plan.seed == project / "other.csv"
    assert kwargs["refine"]["beta"] == 500 and kwargs["refine"]["replay"] == 0.7


def test_without_config_the_flags_and_their_defaults_apply(project: Path) -> None:
    plan = resolve_run(options(task=project / "task.yaml", input=project / "tweets.csv", output=project / "o.csv", beta=40))
    assert plan.seed is None and plan.kwargs["reviewer"] == "none" and plan.kwargs["rule"] == "vote"
    assert plan.kwargs["refine"] == {"beta": 40, "replay": 0.5, "replay_consensus": 0.25, "gate_fraction": 0.2}
    assert plan.kwargs["reviewer_options"] == {}  # defaults are left to the reviewer
    with pytest.raises(AnnotatorError, match="--task T.yaml, or --config"):
        resolve_run(options(input=project / "tweets.csv", output=project / "o.csv"))


@pytest.mark.slow
def test_annotate_config_runs_the_file_with_overrides(project: Path) -> None:
    """The same file through `run` and through `annotate --config`: one run; `--reviewer none` then overrides it."""
    common = ["--input", str(project / "tweets.csv"), "--quiet"]
    ran = cli("run", str(project / "pipeline.yaml"), "--output", str(project / "run.csv"), *common)
    assert ran.returncode == 0, ran.stderr
    annotated = cli("annotate", "--config", str(project / "pipeline.yaml"), "--output", str(project / "annotate.csv"), *common)
    assert annotated.returncode == 0, annotated.stderr
    by_run, by_config = pd.read_csv(project / "run.csv"), pd.read_csv(project / "annotate.csv")
    assert by_config["label"].tolist() == by_run["label"].tolist()
    assert "gold" in set(by_config["label_source"])  # the file's reviewer, not the flag's default 'none'
    overridden = cli("annotate", "--config", str(project / "pipeline.yaml"), "--output", str(project / "none.csv"),
                     "--reviewer", "none", *common)  # fmt: skip
    assert overridden.returncode == 0, overridden.stderr
    sources = pd.read_csv(project / "none.csv")["label_source"]
    assert "gold" not in set(sources) and (sources == "unresolved").sum() == (by_config["label_source"] == "gold").sum()


def test_config_errors_are_one_line(project: Path) -> None:
    (project / "bad.yaml").write_text("task: task.yaml\nspecialists: []\n")
    run = cli("annotate", "--config", str(project / "bad.yaml"), "--input", str(project / "tweets.csv"), "--output", str(project / "o.csv"))
    assert run.returncode == 2 and "specialists" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    run = cli("annotate", "--input", str(project / "tweets.csv"), "--output", str(project / "o.csv"))
    assert run.returncode == 2 and "--task T.yaml, or --config" in run.stderr
