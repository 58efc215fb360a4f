"""Helpers the benchmark scripts share: where the data is, and a stamp saying what produced a number."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AUTOANNOTATOR_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results"


def load_split(dataset: str, split: str) -> pd.DataFrame:
    """A shared dataset split as a DataFrame with `text` and `label`, empty texts dropped."""
    path = DATA / dataset / f"{split}.csv"
    if not path.is_file():
        raise SystemExit(f"{path} not found: set AUTOANNOTATOR_DATA to the folder holding the shared datasets")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return frame[frame["text"].str.strip() != ""].reset_index(drop=True)


def machine() -> str:
    """CPU model, core count and torch build, for the results' stamp."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {gpu}"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
