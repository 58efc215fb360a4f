"""The bundled multiple-choice example (examples/math): its files load, and its README command runs offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from autoannotator.controller.plan import load_pipeline
from autoannotator.items import items_from_frame
from tests.conftest import ROOT

MATH = ROOT / "examples" / "math"


def test_the_example_files_load_and_every_problem_parses() -> None:
    spec, task, _ = load_pipeline(MATH / "pipeline.yaml")
    assert task.type == "multiple_choice" and task.label_names == ["A", "B", "C", "D", "E"]
    assert [s.kind for s in spec.specialists] == ["llm"] * 3 and spec.reviewer.spec == "gold:gold"
    assert all("base_url" not in s.options for s in spec.specialists)  # embedded models: offline, nothing paid
    problems = pd.read_csv(MATH / "problems.csv", dtype=str, keep_default_na=False)
    assert len(problems) == 200 and set(problems["gold"]) <= set(task.label_names)
    items = items_from_frame(problems, task)
    assert items.unusable == {} and all(text.count("\n") >= 6 for text in items.texts)  # question, header, five options


@pytest.mark.slow
def test_the_readme_command_runs_offline(tmp_path: Path) -> None:
    """The README's command on the first three problems (the whole file takes minutes on 2 cores)."""
    small = tmp_path / "problems.csv"
    pd.read_csv(MATH / "problems.csv", dtype=str).iloc[:3].to_csv(small, index=False)
    out = tmp_path / "OUT.csv"
    run = subprocess.run([sys.executable, "-m", "autoannotator", "run", str(MATH / "pipeline.yaml"), "--input", str(small),
                          "--output", str(out), "--quiet"], capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert set(frame["label_source"]) <= {"consensus", "gold"} and (frame["label"] != "").all()
    for votes in frame["votes"]:
        assert sorted(json.loads(votes)) == ["gemma3", "smollm2", "smollm2-3shot"]
    assert "specialist:smollm2" in run.stdout
