"""The pipeline file: what plan writes, what run executes, and what a hostile file cannot do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from autoannotator import AnnotatorError
from autoannotator.controller.plan import load_pipeline
from tests.conftest import EXAMPLE


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A copy of the example (task, seed, 200 tweets) in a fresh folder."""
    shutil.copy(EXAMPLE / "task.yaml", tmp_path / "task.yaml")
    shutil.copy(EXAMPLE / "seed.csv", tmp_path / "seed.csv")
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:200].to_csv(tmp_path / "tweets.csv", index=False)
    return tmp_path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoannotator", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_plan_offline_then_run_equals_the_same_annotate(project: Path) -> None:
    planned = cli("plan", "--task", str(project / "task.yaml"), "--seed", str(project / "seed.csv"), "--offline",
                  "--reviewer", "gold:gold_label", "--export-script", str(project / "reproduce.py"))  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    spec = yaml.safe_load((project / "pipeline.yaml").read_text())
    kinds = [s["kind"] for s in spec["specialists"]]
    assert sorted(kinds) == ["embedding", "lexicon", "tfidf"]  # the offline pool that fits a sentiment task
    assert "# vader-lexicon" in (project / "pipeline.yaml").read_text()  # each choice is explained
    ran = cli("run", str(project / "pipeline.yaml"), "--input", str(project / "tweets.csv"), "--output", str(project / "run.csv"), "--quiet")
    assert ran.returncode == 0, ran.stderr
    annotated = cli("annotate", "--task", str(project / "task.yaml"), "--input", str(project / "tweets.csv"), "--output",
                    str(project / "annotate.csv"), "--seed", str(project / "seed.csv"), "--specialists", ",".join(kinds),
                    "--reviewer", "gold:gold_label", "--quiet")  # fmt: skip
    assert annotated.returncode == 0, annotated.stderr
    by_run, by_annotate = pd.read_csv(project / "run.csv"), pd.read_csv(project / "annotate.csv")
    assert by_run["label"].tolist() == by_annotate["label"].tolist()
    assert by_run["label_source"].tolist() == by_annotate["label_source"].tolist()
    script = subprocess.run([sys.executable, str(project / "reproduce.py"), str(project / "tweets.csv"), str(project / "script.csv")],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert script.returncode == 0, script.stderr
    assert pd.read_csv(project / "script.csv")["label"].tolist() == by_run["label"].tolist()


def write_pipeline(project: Path, **changes) -> Path:
    spec = {"task": "task.yaml", "specialists": [{"kind": "tfidf"}, {"kind": "lexicon"}], "seed": "seed.csv"} | changes
    path = project / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_valid_hand_written_file_loads(project: Path) -> None:
    spec, task, base = load_pipeline(write_pipeline(project))
    assert [s.kind for s in spec.specialists] == ["tfidf", "lexicon"] and task.name == "tweet-sentiment" and base == project


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"specialists": [{"kind": "shell"}]}, "unknown specialist kind 'shell'"),
        ({"specialists": [{"kind": "tfidf", "options": {"C": "lots"}}]}, None),
        ({"specialists": [{"kind": "tfidf", "options": {"command": "rm -rf /"}}]}, "has no option 'command'"),
        ({"specialists": []}, "at least 1"),
        ({"task": "/etc/passwd"}, "absolute path"),
        ({"task": "../../outside.yaml"}, "outside the pipeline's folder"),
        ({"seed": "../secrets.csv"}, "outside the pipeline's folder"),
        ({"specialists": [{"kind": "hf", "options": {"model": "../../models/x"}}]}, "outside the pipeline's folder"),
        ({"specialists": [{"kind": "hf", "options": {"model": "/root/model"}}]}, "absolute path"),
        ({"specialists": [{"kind": "hf", "options": {"model": "org/model", "trust_remote_code": True}}]}, "trust_remote_code"),
        ({"specialists": [{"kind": "lexicon", "options": {"label_map": {"neutral": "sarcasm"}}}]}, "not a task label"),
        ({"chunk_size": "big"}, "chunk_size"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"reviewer": {"spec": "llm", "options": {"api_key": "sk-123"}}}, "API keys do not belong"),
        ({"execute": "import os"}, "execute"),
    ],
)
def test_invalid_or_hostile_pipeline_files_are_refused(project: Path, changes: dict, message: str | None) -> None:
    with pytest.raises(AnnotatorError) as info:
        load_pipeline(write_pipeline(project, **changes))
    if message:
        assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_yaml_object_tags_are_not_loaded(project: Path) -> None:
    path = project / "pipeline.yaml"
    path.write_text("task: !!python/object/apply:os.system ['echo pwned > pwned.txt']\nspecialists: [{kind: tfidf}]\n")
    with pytest.raises(AnnotatorError, match="not valid YAML"):
        load_pipeline(path)
    assert not (project / "pwned.txt").exists()


def test_hub_ids_pass_and_local_model_folders_resolve_inside(project: Path) -> None:
    (project / "models" / "mine").mkdir(parents=True)
    spec, _, _ = load_pipeline(write_pipeline(project, specialists=[
        {"kind": "hf", "options": {"model": "cardiffnlp/twitter-roberta-base-sentiment-latest"}},
        {"kind": "hf", "name": "mine", "options": {"model": "models/mine"}},
    ]))  # fmt: skip
    assert spec.specialists[0].options["model"] == "cardiffnlp/twitter-roberta-base-sentiment-latest"
    assert spec.specialists[1].options["model"] == str((project / "models" / "mine").resolve())
