"""The README says what is true: every benchmark command it says reproduces a results file is the command
that file was produced by."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def test_readme_benchmark_commands_are_the_ones_that_produced_the_published_results() -> None:
    readme = " ".join(ROOT.joinpath("README.md").read_text(encoding="utf-8").split())
    claims = re.findall(r"`(python benchmarks/(\w+)\.py[^`]*)` reproduces", readme)
    assert {script for _, script in claims} >= {"paper_tables", "refinement"}
    for command, script in claims:
        results = ROOT / "benchmarks" / "results" / f"{script}.md"
        produced = re.findall(r"(?:Produced by|command:) `(python benchmarks/[^`]+)`", results.read_text(encoding="utf-8"))
        assert produced == [command], f"README says `{command}` reproduces {results.name}, which was produced by {produced}"
