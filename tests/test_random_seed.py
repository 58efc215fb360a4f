"""One --random-seed fixes a run: the same command twice writes the same bytes; another seed trains other weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from autoannotator import Annotator, AnnotatorError, Task
from autoannotator.store import STORE_FILE, RunStore
from autoannotator.task import SpecialistSpec
from tests.conftest import EXAMPLE
from tests.test_cli import cli as run_cli

# one epoch on a small seed keeps the hf specialist to seconds on 2 CPU cores
HF = {"kind": "hf", "options": {"epochs": 1, "max_length": 32, "train_batch_size": 16, "batch_size": 32, "learning_rate": 2e-4}}


def write_task(tmp_path: Path, **extra) -> Path:
    task = json.loads(json.dumps(Task.from_yaml(EXAMPLE / "task.yaml").model_dump(mode="json", exclude_defaults=True)))
    task["specialists"] = [HF, {"kind": "tfidf"}, {"kind": "lexicon"}]
    task.update(extra)
    path = tmp_path / "task.json.yaml"
    path.write_text(json.dumps(task), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture()
def files(tweets_frame: pd.DataFrame, seed_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return tweets_frame.iloc[:40].copy(), seed_frame.iloc[:64].copy()


def annotate(tmp_path: Path, files: tuple[pd.DataFrame, pd.DataFrame], name: str) -> Path:
    """One small run with hf + tfidf + lexicon, gold review and one refinement round; returns its output file."""
    tweets, seed = files
    output = tmp_path / name / "labeled.csv"
    annotator = Annotator(Task.from_yaml(write_task(tmp_path)), reviewer="gold:gold_label", run_dir=output.parent / "labeled.csv.run",
                          chunk_size=20, refine={"beta": 12, "gate_fraction": 0.3, "min_gate": 3})  # fmt: skip
    annotator.annotate(tweets, seed=seed, output=output)
    return output


def hf_weights(output: Path, version: int = 1) -> dict[str, np.ndarray]:
    return load_file(output.parent / "labeled.csv.run" / "specialists" / "hf" / f"v{version}" / "model" / "model.safetensors")


@pytest.mark.slow
def test_the_same_command_twice_writes_identical_files(tmp_path: Path, files) -> None:
    first = annotate(tmp_path, files, "a")
    second = annotate(tmp_path, files, "b")
    store = RunStore(first.parent / "labeled.csv.run" / STORE_FILE)
    rounds = store.rounds()
    store.close()
    assert rounds, "the run must include a refinement round, so its sampling is covered too"
    assert first.read_bytes() == second.read_bytes()
    for version in range(1, len(rounds) + 2):  # the cold-start model and every refined one
        a, b = hf_weights(first, version), hf_weights(second, version)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_another_random_seed_trains_other_hf_weights(tmp_path: Path, files) -> None:
    tweets, seed = files
    task = Task.from_yaml(write_task(tmp_path))
    weights = {}
    for random_seed in (0, 7):
        run_dir = tmp_path / f"run{random_seed}"
        Annotator(task, specialists=[HF], run_dir=run_dir, random_seed=random_seed).annotate(tweets.iloc[:10], seed=seed)
        weights[random_seed] = load_file(run_dir / "specialists" / "hf" / "v1" / "model" / "model.safetensors")
    head = [k for k in weights[0] if k.startswith("classifier.")]
    assert head and all(not np.array_equal(weights[0][k], weights[7][k]) for k in head)


def test_the_task_files_random_seed_reaches_every_seeded_part_unless_overridden(tmp_path: Path) -> None:
    task = Task.from_yaml(write_task(tmp_path, random_seed=7))
    annotator = Annotator(task, specialists=[HF, "tfidf", "lexicon"], run_dir=tmp_path / "r", refine={"beta": 5})
    assert annotator.random_seed == 7 and annotator.refine.seed == 7
    assert Annotator(task, run_dir=tmp_path / "r", random_seed=3, refine={"beta": 5}).refine.seed == 3
    explicit = Annotator(task, run_dir=tmp_path / "r", refine={"beta": 5, "seed": 11})
    assert explicit.refine.seed == 11  # a seed set in the refine settings themselves is kept
    built = {s.display_name: annotator.pool.new_specialist(s) for s in annotator.specs if s.kind != "tfidf"}
    assert built["hf"].options["seed"] == 7
    own = SpecialistSpec(kind="hf", options={"seed": 5})
    assert annotator.pool.new_specialist(own).options["seed"] == 5  # a specialist's own seed option wins


def test_the_random_seed_is_part_of_the_fingerprint_and_the_summary(tmp_path: Path, files) -> None:
    tweets = tmp_path / "tweets.csv"
    files[0].to_csv(tweets, index=False)
    task = write_task(tmp_path)
    common = ["annotate", "--task", str(task), "--input", str(tweets), "--specialists", "lexicon", "--quiet",
              "--output", str(tmp_path / "o.csv"), "--summary-json", str(tmp_path / "s.json")]  # fmt: skip
    first = run_cli(*common, "--random-seed", "3")
    assert first.returncode == 0, first.stderr
    assert "random seed: 3" in first.stdout
    assert json.loads((tmp_path / "s.json").read_text())["random_seed"] == 3
    other = run_cli(*common, "--random-seed", "4")
    assert other.returncode == 2 and "changed: random_seed" in other.stderr


def test_a_negative_random_seed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match="random_seed"):
        Task.from_yaml(write_task(tmp_path, random_seed=-1))
