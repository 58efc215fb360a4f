"""The wheel holds every file the package reads at run time (issue 12, item 24). The full check (a fresh
virtual environment running `plan` and `annotate` from the installed wheel) is scripts/wheel_check.sh, which
.ci/run runs after the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_the_wheel_holds_every_data_file_of_the_package(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a clean copy: a stale build/ folder must not hide a missing file
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "--wheel-dir", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("autoannotator-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    package = source / "src"
    data_files = {str(p.relative_to(package)) for p in (package / "autoannotator").rglob("*") if p.is_file() and p.suffix != ".py"}
    assert "autoannotator/controller/catalog.yaml" in data_files  # the file `plan` failed without
    assert data_files - packed == set()
