"""Tests read small committed fixtures only (issue 24, item 1): no file under tests/ may refer to the shared
data folder beside the repository, which a fresh clone does not have. Slices of it live in tests/fixtures/,
their provenance in tests/fixtures/SOURCE.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

TESTS = ROOT / "tests"
THIS_FILE = Path(__file__).resolve()  # the only file skipped: it spells the patterns out, and their examples below

SHARED_PATH = re.compile(
    r"""
      \.\.[/\\]shared\b                     # ../shared
    | \bshared/data\b                       # shared/data, /work/shared/data
    | /work/shared\b
    | /\s*["']shared["']                    # ROOT.parent / "shared"
    | ["']shared["']\s*/                    # "shared" / "data"
    | (?:join|Path)\([^)]*["']shared["']    # os.path.join(ROOT, "..", "shared"), Path("..", "shared")
    | \bSHARED_DATA\b
    """,
    re.VERBOSE,
)


def shared_references(text: str) -> list[tuple[int, str]]:
    """(line number, line) of each line of text that refers to the shared data folder."""
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if SHARED_PATH.search(line)]


def test_no_file_under_tests_refers_to_the_shared_data_folder() -> None:
    files = [p for p in TESTS.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.resolve() != THIS_FILE]
    assert TESTS / "conftest.py" in files and TESTS / "fixtures" / "SOURCE.md" in files  # the scan sees the tree
    found = [f"{path.relative_to(ROOT)}:{number}: {line}" for path in sorted(files)
             for number, line in shared_references(path.read_bytes().decode("utf-8", errors="replace"))]  # fmt: skip
    assert found == [], "tests must read committed fixtures (tests/fixtures/, provenance in its SOURCE.md), not:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        'SHARED_DATA = ROOT.parent / "shared" / "data"',
        "rows = (SHARED_DATA / 'aqua_rat' / 'raw' / 'test.json').read_text()",
        'path = ROOT.parent / "shared"',
        'data = Path("../shared/data/aqua_rat/raw/test.json")',
        "DATA = '/work/shared/data'",
        'os.path.join(ROOT, "..", "shared", "data")',
        "see shared/data/aqua_rat/SOURCE.md",
    ],
)
def test_the_guard_catches_a_reference_to_the_shared_data_folder(line: str) -> None:
    assert shared_references(f"import json\n{line}\n") == [(2, line)]


@pytest.mark.parametrize(
    "line",
    [
        'with run_lock(run_dir, "review --serve", shared=True):',
        '"""Two review processes (shared) may work on one run at once."""',
        "# 2 cores shared with other jobs",
        'FIXTURES / "aqua_rat_test_slice.jsonl"',
    ],
)
def test_the_guard_leaves_other_uses_of_the_word_alone(line: str) -> None:
    assert shared_references(line) == []
