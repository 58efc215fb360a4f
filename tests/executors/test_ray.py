"""The Ray executor on a real local Ray cluster (2 CPUs): same labels as local; a killed job resumes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.llm.server import free_port
from autoannotator.store import STORE_FILE
from tests.conftest import EXAMPLE, ROOT

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_gives_the_same_labels_as_local(cluster, task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    from autoannotator.executors.ray import RayExecutor

    frame = tweets_frame.iloc[:400]
    specialists = ["tfidf", "embedding", "lexicon"]
    local = Annotator(task, specialists=specialists, reviewer="gold:gold_label", run_dir=tmp_path / "local", chunk_size=150)
    on_ray = Annotator(task, specialists=specialists, reviewer="gold:gold_label", run_dir=tmp_path / "ray", chunk_size=150,
                       executor=RayExecutor(num_actors=2, batch_size=64))  # fmt: skip
    a, b = local.annotate(frame, seed=seed_frame).frame, on_ray.annotate(frame, seed=seed_frame).frame
    assert a["label"].tolist() == b["label"].tolist()
    assert a["label_source"].tolist() == b["label_source"].tolist()
    assert a["votes"].tolist() == b["votes"].tolist()
    assert len(list((tmp_path / "ray" / "blocks").glob("*.parquet"))) == 3  # one block per chunk, keyed by rows


def answered(log: Path) -> list[str]:
    import json

    return [json.loads(line)["key"] for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow
def test_ray_job_killed_midway_resumes_without_duplicates_or_repeated_paid_calls(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "answered.jsonl"
    server = subprocess.Popen([sys.executable, "-m", "tests.fault_server", "--port", str(port), "--log", str(log), "--delay", "0.02"], cwd=ROOT)
    tweets = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:600].to_csv(tweets, index=False)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tweets),
               "--output", str(tmp_path / "out.csv"), "--seed", str(EXAMPLE / "seed.csv"), "--specialists", "tfidf,lexicon",
               "--reviewer", "llm", "--llm-base-url", f"http://127.0.0.1:{port}/v1", "--llm-model", "gpt-3.5-turbo",
               "--executor", "ray", "--chunk-size", "100", "--run-dir", str(run_dir), "--quiet"]  # fmt: skip
    env = os.environ | {"RAY_ADDRESS": "", "PYTHONPATH": str(ROOT)}
    try:
        job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + 240
        count = 0
        while time.monotonic() < deadline and job.poll() is None:
            if (run_dir / STORE_FILE).exists():
                with sqlite3.connect(run_dir / STORE_FILE, timeout=5) as conn:
                    try:
                        count = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
                    except sqlite3.OperationalError:
                        count = 0
            if count >= 200:
                break
            time.sleep(0.1)
        assert job.poll() is None, "the job ended before it could be killed"
        os.killpg(job.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        job.wait()
        paid_before = len(answered(log))
        resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    finally:
        server.kill()
    keys = answered(log)
    assert len(set(keys)) == len(keys) or len(keys) - len(set(keys)) <= 8  # at most the requests in flight at the kill
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 600 and out["id"].is_unique
    assert out["label_source"].isin(["consensus", "llm", "llm+consensus"]).all()  # every item resolved (combine may keep the pool's label)
    with sqlite3.connect(run_dir / STORE_FILE) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT row) FROM items").fetchone() == (600, 600)
    assert paid_before > 0


@pytest.mark.slow
def test_ray_actors_abstain_where_a_label_maps_to_null(cluster, seed_frame, tweets_frame, tmp_path: Path) -> None:
    from autoannotator.executors.ray import RayExecutor

    binary = Task.from_dict({"name": "polarity", "labels": ["negative", "positive"]})
    seed = seed_frame[seed_frame["label"] != "neutral"]
    specialists = ["tfidf", {"kind": "lexicon", "options": {"label_map": {"neutral": None}}}]
    frame = tweets_frame.iloc[:120]
    local = Annotator(binary, specialists=specialists, run_dir=tmp_path / "local", chunk_size=60).annotate(frame, seed=seed).frame
    on_ray = Annotator(binary, specialists=specialists, run_dir=tmp_path / "ray", chunk_size=60,
                       executor=RayExecutor(num_actors=2, batch_size=32)).annotate(frame, seed=seed).frame  # fmt: skip
    assert on_ray["votes"].tolist() == local["votes"].tolist()
    lexicon_votes = [json.loads(v)["lexicon"]["label"] for v in on_ray["votes"]]
    assert lexicon_votes.count(None) > 10  # VADER's neutral texts: an abstention, not a vote for "negative"


def test_a_block_is_reused_only_for_the_same_items_texts_and_versions(tmp_path: Path) -> None:
    from autoannotator.executors.ray import block_key, reusable_block, write_block
    from autoannotator.scoring import ConsensusSettings

    results = pd.DataFrame({"row": [11, 10], "hard": [False, True], "consensus_label": ["positive", None], "uncertainty": [0.0, 1.0],
                            "votes": ['{"tfidf": {"label": "positive", "p": 0.9}}', "{}"], "unanimous": [True, False]})  # fmt: skip
    key = block_key({"tfidf": 1}, ConsensusSettings())
    block = tmp_path / "rows-10-11.parquet"
    write_block(block, results, [10, 11], ["a", "b"], ["ha", "hb"], key)
    assert reusable_block(block, [10, 11], ["a", "b"], ["ha", "hb"], key)[11].consensus_label == "positive"
    assert reusable_block(block, [10, 11], ["a", "x"], ["ha", "hb"], key) is None  # another item at row 11
    assert reusable_block(block, [10, 11], ["a", "b"], ["ha", "changed"], key) is None  # its text changed
    assert reusable_block(block, [10, 11], ["a", "b"], ["ha", "hb"], block_key({"tfidf": 2}, ConsensusSettings())) is None
    assert reusable_block(block, [10, 11], ["a", "b"], ["ha", "hb"], block_key({"tfidf": 1}, ConsensusSettings(epsilon=0.5))) is None


@pytest.mark.slow
def test_a_block_left_by_another_run_in_the_same_folder_is_not_reused(cluster, task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    from autoannotator.executors.ray import RayExecutor

    def annotate(frame: pd.DataFrame, run_dir: Path, executor: object = "local") -> pd.DataFrame:
        return Annotator(task, specialists=["tfidf", "lexicon"], reviewer="none", run_dir=run_dir, chunk_size=120,
                         executor=executor).annotate(frame, seed=seed_frame).frame  # fmt: skip

    executor = RayExecutor(num_actors=1, batch_size=64)
    annotate(tweets_frame.iloc[:120], tmp_path / "run", executor)
    for path in (tmp_path / "run").glob("run.sqlite*"):  # the store deleted to start over; its blocks left behind
        path.unlink()
    other = tweets_frame.iloc[120:240].reset_index(drop=True)
    on_ray = annotate(other, tmp_path / "run", executor)
    assert on_ray["votes"].tolist() == annotate(other, tmp_path / "local")["votes"].tolist()


@pytest.mark.slow
def test_ray_learned_rule_and_whole_run_budget_match_local(cluster, task: Task, tweets_frame, seed_frame, tmp_path: Path) -> None:
    """Ray actors load the run's saved aggregator; the driver routes the whole-run budget for both executors."""
    from autoannotator.executors.ray import RayExecutor

    frame = tweets_frame.iloc[:500]
    options = dict(specialists=["tfidf", "lexicon"], reviewer="gold:gold_label", rule="learned", budget=0.2, chunk_size=60)
    local = Annotator(task, run_dir=tmp_path / "local", **options).annotate(frame, seed=seed_frame)
    on_ray = Annotator(task, run_dir=tmp_path / "ray", executor=RayExecutor(num_actors=2, batch_size=32), **options).annotate(frame, seed=seed_frame)
    assert on_ray.summary.rule == "learned"
    assert local.frame["label_source"].tolist() == on_ray.frame["label_source"].tolist()
    assert local.frame["uncertainty"].tolist() == on_ray.frame["uncertainty"].tolist()
    assert abs(on_ray.summary.review_fraction - 0.2) <= 0.01 and abs(local.summary.review_fraction - 0.2) <= 0.01
