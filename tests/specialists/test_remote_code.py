"""trust_remote_code is one decision of the caller's (the command line's --trust-remote-code), for every way a
model gets loaded: a task file, a pipeline file, a saved folder's specialist.json, a run directory (issue 12, item 22)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from autoannotator import Annotator, AnnotatorError, Task
from autoannotator.controller.plan import load_pipeline
from autoannotator.specialists import create_specialist, load_specialist
from autoannotator.specialists.hf import HFSpecialist
from tests.conftest import EXAMPLE

ASKS = "asks for trust_remote_code"


def asking_folder(folder: Path, task: Task, kind: str = "embedding") -> Path:
    """A saved specialist whose own specialist.json turns trust_remote_code on (nothing else in it is loaded)."""
    folder.mkdir(parents=True)
    manifest = {"kind": kind, "labels": task.label_names, "options": {"trust_remote_code": True}}
    (folder / "specialist.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoannotator", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLE / "task.yaml", tmp_path / "task.yaml")
    pd.read_csv(EXAMPLE / "seed.csv", dtype=str).iloc[:60].to_csv(tmp_path / "seed.csv", index=False)
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:12].to_csv(tmp_path / "tweets.csv", index=False)
    return tmp_path


def test_a_saved_folder_cannot_turn_remote_code_on(task: Task, tmp_path: Path) -> None:
    folder = asking_folder(tmp_path / "zoo" / "sneaky", task)
    with pytest.raises(AnnotatorError, match=ASKS):
        create_specialist("saved", task, path=str(folder))
    allowed = create_specialist("saved", task, path=str(folder), allow_remote_code=True)
    assert allowed.requests_remote_code() and allowed.allow_remote_code
    nested = tmp_path / "nested"  # a saved specialist wrapping one that asks
    nested.mkdir()
    (nested / "specialist.json").write_text(json.dumps({"kind": "saved", "labels": task.label_names, "options": {"path": "gone"}}))
    shutil.copytree(folder, nested / "inner")
    with pytest.raises(AnnotatorError, match=ASKS):
        create_specialist("saved", task, path=str(nested))


def test_the_python_api_refuses_without_permission(task: Task, small_tweets, tmp_path: Path) -> None:
    folder = asking_folder(tmp_path / "zoo" / "sneaky", task)
    for specialists in ([{"kind": "saved", "options": {"path": str(folder)}}, "lexicon"],
                        [{"kind": "embedding", "options": {"trust_remote_code": True}}, "lexicon"]):  # fmt: skip
        with pytest.raises(AnnotatorError, match=ASKS):
            Annotator(task, specialists=specialists, run_dir=tmp_path / "run").annotate(small_tweets.iloc[:5])
    with pytest.raises(AnnotatorError, match=ASKS):  # a ready instance needs the run's permission too
        Annotator(task, specialists=[HFSpecialist(task, trust_remote_code=True), "lexicon"], run_dir=tmp_path / "run2")
    assert not (tmp_path / "run" / "specialists").exists()


def test_a_run_directory_cannot_turn_remote_code_on(task: Task, seed_frame, small_tweets, tmp_path: Path) -> None:
    """A run store's saved specialists are loaded again on resume: a tampered specialist.json there is refused."""
    source = create_specialist("tfidf", task).fit(seed_frame.text.tolist(), seed_frame.label.tolist()).save(tmp_path / "zoo" / "tfidf")
    run = tmp_path / "run"
    pool = [{"kind": "saved", "name": "mine", "options": {"path": str(source)}}, "lexicon"]
    Annotator(task, specialists=pool, run_dir=run).annotate(small_tweets.iloc[:20])
    inner = run / "specialists" / "mine" / "v1" / "inner" / "specialist.json"
    manifest = json.loads(inner.read_text())
    inner.write_text(json.dumps(manifest | {"kind": "embedding", "options": {"trust_remote_code": True}}))
    with pytest.raises(AnnotatorError, match=ASKS):
        Annotator(task, specialists=pool, run_dir=run).annotate(small_tweets.iloc[:20])
    with pytest.raises(AnnotatorError, match=ASKS):
        load_specialist(run / "specialists" / "mine" / "v1", task)


def test_a_pipeline_saved_folder_stays_inside_and_cannot_turn_remote_code_on(project: Path, task: Task, tmp_path: Path) -> None:
    def pipeline(path: str) -> Path:
        spec = {"task": "task.yaml", "specialists": [{"kind": "saved", "options": {"path": path}}, {"kind": "lexicon"}]}
        (project / "pipeline.yaml").write_text(yaml.safe_dump(spec))
        return project / "pipeline.yaml"

    outside = create_specialist("lexicon", task).save(tmp_path.parent / f"{tmp_path.name}-outside" / "lexicon")
    for path, message in [(str(outside), "absolute path"), (f"../{outside.parent.name}/lexicon", "outside the pipeline's folder")]:
        with pytest.raises(AnnotatorError, match=message):
            load_pipeline(pipeline(path))
    spec, _, _ = load_pipeline(pipeline(f"../{outside.parent.name}/lexicon"), allow_dirs=[outside.parent])
    assert spec.specialists[0].options["path"] == str(outside.resolve())
    asking_folder(project / "models" / "sneaky", task)
    with pytest.raises(AnnotatorError, match=ASKS):
        load_pipeline(pipeline("models/sneaky"))
    assert load_pipeline(pipeline("models/sneaky"), allow_remote_code=True)[0].specialists[0].kind == "saved"
    refused = cli("run", str(pipeline(f"../{outside.parent.name}/lexicon")), "--input", str(project / "tweets.csv"),
                  "--output", str(project / "out.csv"))  # fmt: skip
    assert refused.returncode == 2 and "--allow-dir" in refused.stderr and not (project / "out.csv").exists()
    allowed = cli("run", str(pipeline(f"../{outside.parent.name}/lexicon")), "--input", str(project / "tweets.csv"),
                  "--output", str(project / "out.csv"), "--allow-dir", str(outside.parent), "--quiet")  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert len(pd.read_csv(project / "out.csv")) == 12


@pytest.mark.slow
def test_annotate_ignores_trust_remote_code_from_a_task_file_without_the_flag(project: Path) -> None:
    task = yaml.safe_load((project / "task.yaml").read_text())
    task["specialists"] = [{"kind": "embedding", "options": {"trust_remote_code": True}}, {"kind": "lexicon"}]
    (project / "task.yaml").write_text(yaml.safe_dump(task))
    args = ["annotate", "--task", str(project / "task.yaml"), "--input", str(project / "tweets.csv"), "--seed", str(project / "seed.csv"),
            "--output", str(project / "out.csv"), "--quiet"]  # fmt: skip
    refused = cli(*args)
    assert refused.returncode == 2 and ASKS in refused.stderr and "--trust-remote-code" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (project / "out.csv").exists()
    allowed = cli(*args, "--trust-remote-code")
    assert allowed.returncode == 0, allowed.stderr
    assert len(pd.read_csv(project / "out.csv")) == 12
