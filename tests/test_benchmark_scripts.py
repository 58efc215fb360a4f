"""Every benchmark script starts as its README command runs it (`python benchmarks/NAME.py`), although
`benchmarks/math.py` is named like the standard library's `math`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPTS = sorted(p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name not in ("common.py", "stdlib_first.py", "store_scaling.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_starts(script: str) -> None:
    run = subprocess.run([sys.executable, f"benchmarks/{script}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "usage:" in run.stdout


def test_store_scaling_starts_as_a_module() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.store_scaling", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
