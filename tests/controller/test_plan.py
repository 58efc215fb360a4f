"""The pipeline file: what plan writes, what run executes, and what a hostile file cannot do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# ---- the YAML plan writes: comments stay comments, a bad file never replaces a good one (issue 12, item 23)

INJECTED = "Sentiment of tweets.{}refine: {{beta: 1}}{}consensus: {{epsilon: 0.99}}"
BREAKS = ["\n", "\r", "\r\n", "\x85", "\u2028", "\u2029"]


def planned_spec(project: Path):
    from autoannotator.controller.plan import PipelineSpec

    return PipelineSpec(task="task.yaml", specialists=[{"kind": "tfidf", "name": "tfidf"}, {"kind": "lexicon"}], seed="seed.csv")


@pytest.mark.parametrize("newline", BREAKS, ids=[repr(b) for b in BREAKS])
def test_multi_line_comments_never_become_keys(project: Path, newline: str) -> None:
    from autoannotator.controller.plan import render_pipeline

    spec = planned_spec(project)
    hostile = INJECTED.format(newline, newline)
    text = render_pipeline(spec, {"tfidf": hostile, "consensus": hostile, "reviewer": hostile}, [f"Task profile: {hostile}", "ok"])
    assert yaml.safe_load(text) == spec.model_dump(mode="json", exclude_none=True)
    (project / "pipeline.yaml").write_text(text, encoding="utf-8")
    loaded, _, _ = load_pipeline(project / "pipeline.yaml")
    assert loaded.refine is None and loaded.consensus.epsilon is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profile=st.text(max_size=80), note=st.text(max_size=40))
def test_any_comment_text_leaves_the_data_as_it_was(project: Path, profile: str, note: str) -> None:
    from autoannotator.controller.plan import render_pipeline

    spec = planned_spec(project)
    text = render_pipeline(spec, {"tfidf": note, "consensus": profile}, [f"Task profile: {profile}"])
    assert yaml.safe_load(text) == spec.model_dump(mode="json", exclude_none=True)


def test_a_pipeline_that_fails_the_checks_never_replaces_a_good_one(project: Path) -> None:
    from autoannotator.controller.plan import write_pipeline as write_checked

    good = write_pipeline(project)
    before = good.read_text()
    with pytest.raises(AnnotatorError, match="unknown specialist kind"):
        write_checked(good, "task: task.yaml\nspecialists: [{kind: shell}]\n")
    assert good.read_text() == before
    assert sorted(p.name for p in project.iterdir()) == ["pipeline.yaml", "seed.csv", "task.yaml", "tweets.csv"]  # no temporary left
    write_checked(good, "task: task.yaml\nspecialists: [{kind: lexicon}]\n")
    assert load_pipeline(good)[0].specialists[0].kind == "lexicon"


class ProfileServer:
    """An OpenAI-compatible server whose LLM writes a hostile multi-line task profile."""

    def __init__(self, content: str) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                                   "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_plan_with_an_llm_written_profile_cannot_configure_the_run(project: Path) -> None:
    server = ProfileServer("A sentiment task.\nrefine: {beta: 0}\r\nconsensus: {epsilon: 0.99}")
    try:
        planned = cli("plan", "--task", str(project / "task.yaml"), "--seed", str(project / "seed.csv"), "--offline",
                      "--reviewer", "none", "--llm-base-url", server.url, "--llm-model", "m")  # fmt: skip
    finally:
        server.close()
    assert planned.returncode == 0, planned.stderr
    spec, _, _ = load_pipeline(project / "pipeline.yaml")
    assert spec.refine is None and spec.consensus.epsilon is None
    assert "# Task profile: A sentiment task." in (project / "pipeline.yaml").read_text()


@pytest.mark.slow
def test_plan_output_into_another_folder_embeds_the_task_and_copies_the_seed(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "pipelines"
    elsewhere.mkdir(parents=True)
    planned = cli("plan", "--task", str(project / "task.yaml"), "--seed", str(project / "seed.csv"), "--offline",
                  "--reviewer", "gold:gold_label", "--output", str(elsewhere / "pipeline.yaml"),
                  "--export-script", str(tmp_path / "reproduce.py"))  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    spec, task, base = load_pipeline(elsewhere / "pipeline.yaml")
    assert isinstance(spec.task, dict) and task.label_names == ["negative", "neutral", "positive"] and task.examples
    assert (elsewhere / "seed.csv").read_bytes() == (project / "seed.csv").read_bytes() and spec.seed == "seed.csv"
    small = project / "small.csv"
    pd.read_csv(project / "tweets.csv", dtype=str).iloc[:40].to_csv(small, index=False)
    ran = cli("run", str(elsewhere / "pipeline.yaml"), "--input", str(small), "--output", str(tmp_path / "out.csv"), "--quiet")
    assert ran.returncode == 0, ran.stderr
    script = subprocess.run([sys.executable, str(tmp_path / "reproduce.py"), str(small), str(tmp_path / "script.csv")],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert script.returncode == 0, script.stderr
    assert pd.read_csv(tmp_path / "script.csv")["label"].tolist() == pd.read_csv(tmp_path / "out.csv")["label"].tolist()
