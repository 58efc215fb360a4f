"""`autoannotator report` on a real run: every section, values from the store, images inside, data escaped."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import AnnotatorError
from autoannotator.run_report import write_report
from tests.web.conftest import INJECTION

SECTIONS = ("routes", "review", "agreement", "uncertainty", "budget", "refinement", "llm", "unresolved")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def test_report_holds_every_section_with_embedded_images(hostile_run: Path, tmp_path: Path) -> None:
    html = write_report(hostile_run.with_name("out.csv.run"), tmp_path / "report.html", gold_column="truth").read_text()
    page = parse(html)
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert set(SECTIONS) <= ids
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) >= 5  # routes, agreement, uncertainty, budget curve, rounds
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing that runs or loads: no script, no event handler, no remote or file reference
    assert not [tag for tag, _ in page.tags if tag in ("script", "iframe", "object", "embed", "link")]
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
    assert not re.search(r"(src|href)=\"(?!data:)", html)
    # the data's markup is text: escaped in the source, intact in what a reader sees
    text = "".join(page.text)
    assert INJECTION in text and "<script>window.pwned" not in html
    labeled = pd.read_csv(hostile_run, dtype=str, keep_default_na=False)
    counts = labeled["label_source"].value_counts()
    for route in ("consensus", "gold", "unresolved"):
        assert re.search(rf"<td>{route}</td><td>{counts[route]}</td>", html), route
    reasons = labeled.loc[labeled["reason"] != "", "reason"].value_counts()
    assert set(reasons.index) == {"gold_missing"}
    assert f"<td>gold_missing</td><td>{reasons['gold_missing']}</td>" in html
    assert re.search(r"<td>tfidf r1</td>", html)  # a refinement round ran (beta 40)
    assert "no LLM was called" in html and "$0.0000" not in html  # gold review: no LLM cost to show, not a $0 one


def test_report_accuracy_curve_matches_evaluate(hostile_run: Path, tmp_path: Path) -> None:
    """At the realised review share, the report's accuracy for this run is the labeled file's accuracy."""
    html = write_report(hostile_run.with_name("out.csv.run"), tmp_path / "r.html", gold_column="truth").read_text()
    labeled = pd.read_csv(hostile_run, dtype=str, keep_default_na=False)
    scored = labeled[labeled["uncertainty"] != ""]
    accuracy = (scored["label"] == scored["truth"]).mean()
    share = (scored["label_source"] != "consensus").mean()  # sent to review: answered or left unresolved
    assert f"<td>{share:.1%}</td><td>-</td><td>{accuracy:.3f}</td>" in html


def test_report_cli_one_line_errors(hostile_run: Path, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "autoannotator", "report", *args], capture_output=True, text=True, timeout=120)

    missing = cli(str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "no run store" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
    wrong = cli(str(hostile_run.with_name("out.csv.run")), "--gold", "nope", "--output", str(tmp_path / "r.html"))
    assert wrong.returncode == 2 and "no column 'nope'" in wrong.stderr
    ok = cli(str(hostile_run.with_name("out.csv.run")), "--output", str(tmp_path / "r.html"))
    assert ok.returncode == 0, ok.stderr
    by_file = cli(str(hostile_run), "--output", str(tmp_path / "f.html"))  # the labeled file named: its out.csv.run folder
    assert by_file.returncode == 0, by_file.stderr
    assert str(hostile_run.with_name("out.csv.run")) in (tmp_path / "f.html").read_text()
    assert "agreement with the run's final labels" in (tmp_path / "r.html").read_text()  # no gold: the reviewed-items curve
    with pytest.raises(AnnotatorError, match="rows but the run has"):
        short = tmp_path / "short.csv"
        pd.read_csv(hostile_run).iloc[:10].to_csv(short, index=False)
        write_report(hostile_run.with_name("out.csv.run"), tmp_path / "x.html", gold_column="truth", labeled=short)


@pytest.mark.slow
def test_report_ledger_of_a_run_reviewed_by_a_real_llama_server(task, tweets_frame: pd.DataFrame, seed_frame: pd.DataFrame, tmp_path: Path) -> None:
    """The LLM ledger and the llm route of a run whose hard items a real llama.cpp server (SmolLM2) reviewed."""
    from autoannotator import Annotator
    from autoannotator.llm.server import llama_server
    from autoannotator.store import STORE_FILE, RunStore

    with llama_server("smollm2-135m") as url:
        options = {"base_url": url, "model": "smollm2-135m", "structured": "json_object"}
        result = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="llm", reviewer_options=options, reviewer_probe=10,
                           run_dir=tmp_path / "run").annotate(tweets_frame.iloc[:40], seed=seed_frame, output=tmp_path / "out.csv")  # fmt: skip
    usage = result.summary.llm["smollm2-135m"]
    assert usage["calls"] > 0
    html = write_report(tmp_path / "run", tmp_path / "r.html", gold_column="gold_label").read_text()
    store = RunStore(tmp_path / "run" / STORE_FILE)
    latencies = store.llm_latencies()["smollm2-135m"]
    store.close()
    assert len(latencies) == usage["calls"]
    row = re.search(r"<tr><td>smollm2-135m</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>.*?<td>([\d.]+) s</td><td>([\d.]+) s</td><td>([\d.]+) s</td></tr>",
                    html, flags=re.S)  # fmt: skip
    assert row, "no ledger row"
    assert [int(row.group(i)) for i in (1, 2, 3)] == [usage["calls"], usage["cache_hits"], usage["failed"]]
    p50, p90, p99 = (float(row.group(i)) for i in (4, 5, 6))
    assert min(latencies) - 0.01 <= p50 <= p90 <= p99 <= max(latencies) + 0.01
    assert "unknown" in html  # the local model has no price: never $0
    for route in {"llm", "llm+consensus"} & set(result.summary.counts):  # combine: the answer kept, or overruled by the pool
        assert re.search(rf"<td>{re.escape(route)}</td><td>{result.summary.counts[route]}</td>", html)
    assert "the reviewer labeled 10 random seed items" in html  # the reviewer probe's section


def test_report_accuracy_counts_the_final_label_where_combine_overruled_the_reviewer(task, tweets_frame: pd.DataFrame, seed_frame: pd.DataFrame,
                                                                                    tmp_path: Path) -> None:  # fmt: skip
    """Under --review-mode combine a reviewed item can keep its consensus label over the reviewer's answer
    (llm+consensus): the report's accuracy for this run is that of the final labels, as `evaluate` says."""
    from autoannotator import Annotator
    from autoannotator.llm.server import free_port
    from tests.fault_server import serve

    port = free_port()
    httpd = serve(port, tmp_path / "answered.jsonl")  # a real HTTP reviewer answering by keywords: often wrong
    try:
        options = {"base_url": f"http://127.0.0.1:{port}/v1", "model": "gpt-3.5-turbo", "max_retries": 1, "timeout_s": 10.0}
        Annotator(task.model_copy(update={"id_column": None}), specialists=["lexicon"], rule="margin", epsilon=0.6, reviewer="llm",
                  reviewer_options=options, reviewer_probe=30, review_mode="combine",
                  run_dir=tmp_path / "out.csv.run").annotate(tweets_frame.iloc[:120][["text", "gold_label"]], seed=seed_frame.iloc[:150],
                                                             output=tmp_path / "out.csv")  # fmt: skip
    finally:
        httpd.shutdown()
    labeled = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    overruled = (labeled["label_source"] == "llm+consensus") & (labeled["label"] != labeled["reviewed_label"])
    assert overruled.any()  # the case at hand: the answer and the final label differ
    evaluated = subprocess.run([sys.executable, "-m", "autoannotator", "evaluate", str(tmp_path / "out.csv"), "--gold", "gold_label"],
                               capture_output=True, text=True)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    html = write_report(tmp_path / "out.csv.run", tmp_path / "r.html", gold_column="gold_label").read_text()
    scored = labeled[labeled["uncertainty"] != ""]
    accuracy = (scored["label"] == scored["gold_label"]).mean()
    share = (scored["label_source"] != "consensus").mean()
    assert f"<td>{share:.1%}</td><td>-</td><td>{accuracy:.3f}</td>" in html
    assert f"accuracy: {accuracy:.4f}" in evaluated.stdout and len(scored) == len(labeled)  # every item is scored: the same figure
    from autoannotator.run_report import figures
    from autoannotator.store import STORE_FILE, RunStore

    store = RunStore(tmp_path / "out.csv.run" / STORE_FILE)
    curve = figures.budget_curve(store.items(), None)
    store.close()
    assert curve.run[-1] == 1.0  # at the realised share the run's outcome is its final labels: full agreement with them
