"""The reviewer probe, --review-mode combine|override and the guard, against a real local OpenAI-compatible server
(tests/fault_server.py: it answers by keywords, a reviewer of measurable skill) and the bundled tweets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, AnnotatorError, Task
from autoannotator.llm.server import free_port
from autoannotator.probe import probe_indices
from autoannotator.run.probing import stored_probe
from autoannotator.store import STORE_FILE, RunStore
from tests.conftest import EXAMPLE, ROOT
from tests.fault_server import keyword_label, serve

SUMMARY_KEYS = {"probe_items", "accuracy", "accuracy_low", "accuracy_high", "pool_accuracy_on_probe", "pool_accuracy_on_uncertain_probe"}
POOL = {"specialists": ["lexicon"], "rule": "margin", "epsilon": 0.6}  # untrained: its out-of-fold labels cost no training


def answered(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture()
def server(tmp_path: Path):
    port, log = free_port(), tmp_path / "answered.jsonl"
    httpd = serve(port, log)
    yield f"http://127.0.0.1:{port}/v1", log
    httpd.shutdown()


@pytest.fixture()
def bare_task(task: Task) -> Task:
    return task.model_copy(update={"id_column": None})


def keyword_wrong(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Tweets where the server's keyword answer is not the true label: there the server is a reviewer that is
    always wrong (accuracy 0), far below any pool."""
    return frame[frame.text.map(keyword_label) != frame[column]]


def llm(url: str) -> dict:
    return {"base_url": url, "model": "gpt-3.5-turbo", "max_retries": 1, "timeout_s": 10.0}


def test_probe_figures_combine_and_paid_once(bare_task: Task, seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, server, tmp_path: Path) -> None:
    """estimate asks the probe (30 seed items); annotate in the same run directory reads it back and pays only for
    the hard items; a rerun of annotate sends no request at all. Combine keeps the answer and the concluded label apart."""
    url, log = server
    seed, data = seed_frame.iloc[:150], tweets_frame.iloc[:120][["text", "gold_label"]]
    annotator = Annotator(bare_task, **POOL, reviewer="llm", reviewer_options=llm(url), run_dir=tmp_path / "run", reviewer_probe=30)
    assert annotator.review_mode == "combine"
    estimate = annotator.estimate(data, seed=seed, sample=50, curve_folds=0)
    probe_requests = len(answered(log))
    assert probe_requests == 30 and estimate.reviewer["probe_items"] == 30 and estimate.reviewer["calls"] == 30
    result = Annotator(bare_task, **POOL, reviewer="llm", reviewer_options=llm(url), run_dir=tmp_path / "run", reviewer_probe=30).annotate(data, seed=seed)
    figures = result.summary.reviewer
    assert SUMMARY_KEYS <= set(figures) and figures["review_mode"] == "combine"
    assert {k: figures[k] for k in SUMMARY_KEYS | {"confusion", "calls"}} == {k: estimate.reviewer[k] for k in SUMMARY_KEYS | {"confusion", "calls"}}
    probed = seed.iloc[stored_probe(RunStore(tmp_path / "run" / STORE_FILE)).seed_index]
    truth_right = (probed.text.map(keyword_label) == probed.label).mean()
    assert figures["accuracy"] == pytest.approx(truth_right)  # the probe's accuracy is the server's real one on those items
    assert figures["accuracy_low"] < figures["accuracy"] < figures["accuracy_high"]
    assert sum(map(sum, figures["confusion"])) == 30
    frame = result.frame
    reviewed = frame[frame.reviewed_label.notna()]
    assert len(reviewed) and len(answered(log)) == probe_requests + len(reviewed)  # the probe was not asked again
    assert set(reviewed.label_source) <= {"llm", "llm+consensus"}
    kept = reviewed.label_source == "llm"
    assert (reviewed.label[kept] == reviewed.reviewed_label[kept]).all()
    assert (reviewed.label[~kept] != reviewed.reviewed_label[~kept]).all()
    assert figures["answer_kept"] == kept.sum() and figures["answer_overruled"] == (~kept).sum()
    assert (reviewed.reviewed_label == reviewed.text.map(keyword_label)).all()  # reviewed_label: what the reviewer said
    again = Annotator(bare_task, **POOL, reviewer="llm", reviewer_options=llm(url), run_dir=tmp_path / "run", reviewer_probe=30).annotate(data, seed=seed)
    assert len(answered(log)) == probe_requests + len(reviewed)  # a rerun makes no new request
    assert again.summary.reviewer["accuracy"] == figures["accuracy"]


LEARNED = {"specialists": ["tfidf", "lexicon"], "rule": "learned", "budget": 0.4}  # the aggregator's posterior per item


@pytest.mark.parametrize("pool", [POOL, LEARNED], ids=["margin", "learned"])
def test_combine_does_not_follow_a_reviewer_that_is_always_wrong(bare_task: Task, seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame,
                                                                 server, tmp_path: Path, pool: dict) -> None:  # fmt: skip
    """On tweets where the keyword server is always wrong, override makes every reviewed label wrong; combine,
    having measured the reviewer on the probe, keeps the pool's labels and ends at least as accurate as no review.
    The warning names the figures."""
    url, _ = server
    seed = keyword_wrong(seed_frame, "label").iloc[:120]
    data = keyword_wrong(tweets_frame, "gold_label").iloc[:80][["text", "gold_label"]]
    with pytest.warns(UserWarning, match=r"not shown better than the specialists: on the \d+ probe items the pool finds uncertain the reviewer is right 0.0%"):
        combined = Annotator(bare_task, **pool, reviewer="llm", reviewer_options=llm(url), run_dir=tmp_path / "c", reviewer_probe=40).annotate(data, seed=seed)
    with pytest.warns(UserWarning):
        overridden = Annotator(bare_task, **pool, reviewer="llm", reviewer_options=llm(url), run_dir=tmp_path / "o", reviewer_probe=40,
                               review_mode="override").annotate(data, seed=seed)  # fmt: skip
    c, o = combined.frame, overridden.frame
    reviewed = c.reviewed_label.notna()
    assert reviewed.sum() >= 10 and combined.summary.reviewer["accuracy"] == 0.0
    assert combined.summary.reviewer["weaker_than_pool"] is True and combined.summary.reviewer["not_shown_better"] is True
    assert (o.label[reviewed] == o.reviewed_label[reviewed]).all() and (o.label[reviewed] != o.gold_label[reviewed]).all()
    no_review = (c.consensus_label == c.gold_label).mean()
    # the learned rule: the reviewer's full confusion is used (it has a favourite wrong label per true label), and an
    # answer it gives as often for two labels can tip a near-tie of the pool either way: one item of 80 measured
    slack = 0.0 if pool is POOL else 1.5 / len(c)
    assert (c.label == c.gold_label).mean() >= no_review - slack and no_review > (o.label == o.gold_label).mean()
    assert (c.label_source[reviewed] == "llm+consensus").mean() > 0.9
    store = RunStore(tmp_path / "c" / STORE_FILE)
    refinement_sees = {r.row: r.label for r in store.labeled_by_review() + store.labeled_by_review(gate=True)}
    assert refinement_sees == c.label[reviewed].to_dict()  # refinement rounds train on the combined labels, not the answers


def test_without_a_seed_combine_falls_back_to_override(bare_task: Task, tweets_frame: pd.DataFrame, server, tmp_path: Path) -> None:
    url, log = server
    data = tweets_frame.iloc[:30][["text"]]
    result = Annotator(bare_task, **POOL, reviewer="llm", reviewer_options=llm(url), run_dir=tmp_path / "run").annotate(data)
    note = result.summary.reviewer
    assert note["review_mode"] == "override" and "combine needs the reviewer's measured confusion" in note["note"]
    reviewed = result.frame[result.frame.reviewed_label.notna()]
    assert len(reviewed) and (reviewed.label == reviewed.reviewed_label).all() and set(reviewed.label_source) == {"llm"}
    assert len(answered(log)) == len(reviewed)  # no probe without a seed


def test_gold_and_human_override_unchanged(task: Task, seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, tmp_path: Path) -> None:
    """Gold and human reviewers are not probed and their answers are the label (as before combine existed)."""
    human = Annotator(task, **POOL, reviewer="human", run_dir=tmp_path / "h")
    assert (human.review_mode, human.settings.reviewer_probe) == ("override", 0)
    data = tweets_frame.iloc[:60]
    result = Annotator(task, **POOL, reviewer="gold:gold_label", run_dir=tmp_path / "g").annotate(data, seed=seed_frame.iloc[:100])
    frame = result.frame
    reviewed = frame.label_source == "gold"
    assert reviewed.sum() and (frame.label[reviewed] == frame.gold_label[reviewed]).all()
    assert (frame.reviewed_label[reviewed] == frame.gold_label[reviewed]).all()
    assert result.summary.reviewer == {"review_mode": "override"}
    with pytest.raises(AnnotatorError, match="gold reviewer reads the input's column"):
        Annotator(task, **POOL, reviewer="gold:gold_label", run_dir=tmp_path / "x", reviewer_probe=10)
    with pytest.raises(AnnotatorError, match="unknown review mode"):
        Annotator(task, **POOL, reviewer="gold:gold_label", run_dir=tmp_path / "x", review_mode="average")


def test_require_better_reviewer_stops_with_one_line(seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, server, tmp_path: Path) -> None:
    """The CLI: the warning (one line, with the figures) before the review; --require-better-reviewer exits 2 with
    one line instead, having paid only the probe."""
    url, log = server
    seed, data = tmp_path / "seed.csv", tmp_path / "in.csv"
    keyword_wrong(seed_frame, "label").iloc[:100].to_csv(seed, index=False)
    keyword_wrong(tweets_frame, "gold_label").iloc[:40].to_csv(data, index=False)
    args = [sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(data), "--seed", str(seed),
            "--specialists", "lexicon", "--rule", "margin", "--epsilon", "0.6", "--reviewer", "llm", "--llm-base-url", url,
            "--llm-model", "gpt-3.5-turbo", "--reviewer-probe", "30", "--quiet", "--run-dir", str(tmp_path / "run")]  # fmt: skip
    stopped = subprocess.run([*args, "--output", str(tmp_path / "a.csv"), "--require-better-reviewer"], capture_output=True, text=True, cwd=ROOT)
    assert stopped.returncode == 2, stopped.stderr
    assert stopped.stderr.strip().startswith("error: --require-better-reviewer: the reviewer is not shown better than the specialists")
    assert len(stopped.stderr.strip().splitlines()) == 1 and "Traceback" not in stopped.stderr
    assert len(answered(log)) == 30 and not (tmp_path / "a.csv").exists()
    warned = subprocess.run([*args, "--output", str(tmp_path / "b.csv"), "--summary-json", str(tmp_path / "s.json")], capture_output=True, text=True, cwd=ROOT)
    assert warned.returncode == 0, warned.stderr
    warning = [line for line in warned.stderr.splitlines() if line.startswith("warning: the reviewer is not shown better")]
    assert len(warning) == 1 and "the pool" in warning[0]
    summary = json.loads((tmp_path / "s.json").read_text())["reviewer"]
    assert SUMMARY_KEYS <= set(summary) and summary["accuracy"] == 0.0 and summary["weaker_than_pool"]
    assert "reviewer probe: 30 seed items" in warned.stdout
    reviewed = pd.read_csv(tmp_path / "b.csv").reviewed_label.notna().sum()
    assert reviewed and len(answered(log)) == 30 + reviewed  # the stopped run's probe was not paid again
    scores = subprocess.run([sys.executable, "-m", "autoannotator", "evaluate", str(tmp_path / "b.csv"), "--gold", "gold_label",
                             "--run-dir", str(tmp_path / "run"), "--json", str(tmp_path / "e.json")], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert scores.returncode == 0, scores.stderr
    assert "reviewer probe: 30 seed items" in scores.stdout and "llm+consensus" in scores.stdout
    evaluated = json.loads((tmp_path / "e.json").read_text())["reviewer"]
    assert {k: evaluated[k] for k in SUMMARY_KEYS} == {k: summary[k] for k in SUMMARY_KEYS}


def test_probe_with_a_target_accuracy_routes_as_the_run(bare_task: Task, seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, server, tmp_path: Path) -> None:
    """--target-accuracy routes by its certified threshold: the probe's uncertain items are those above it."""
    url, _ = server
    annotator = Annotator(bare_task, specialists=["tfidf", "lexicon"], rule="learned", target_accuracy=0.7, audit=0.0, reviewer="llm",
                          reviewer_options=llm(url), run_dir=tmp_path / "run", reviewer_probe=30)  # fmt: skip
    result = annotator.annotate(tweets_frame.iloc[:60][["text"]], seed=seed_frame.iloc[:150])
    figures = result.summary.reviewer
    assert figures["probe_items"] == 30 and 0 < figures["uncertain_probe_items"] <= 30
    assert figures["review_mode"] == "combine" and SUMMARY_KEYS <= set(figures)


def outside(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed items the server always answers outside the label set: every probe answer fails."""
    return frame.assign(text=frame.text + " [outside]")


@pytest.mark.parametrize("empty", ["failed", "all_examples"])
def test_an_empty_probe_does_not_claim_combine(bare_task: Task, seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, server, tmp_path: Path,
                                               empty: str) -> None:  # fmt: skip
    """A probe with no answered item (every answer outside the label set; or every seed item is one of the
    reviewer's few-shot examples) measured nothing: the answers override and the summary and the warning say
    why; --require-better-reviewer stops with a line that says so, without '-' figures."""
    url, log = server
    seed = outside(seed_frame.iloc[:40]) if empty == "failed" else seed_frame.iloc[:6]
    options = llm(url) | ({"prompt": "k-shot", "shots": 40} if empty == "all_examples" else {})
    data = tweets_frame.iloc[:40][["text"]]
    why = "none of the 10 probe items got a usable answer" if empty == "failed" else r"no seed item was left to ask \(all are the reviewer's few-shot examples\)"
    with pytest.raises(AnnotatorError, match=f"--require-better-reviewer: the reviewer probe measured nothing: {why}") as stopped:
        Annotator(bare_task, **POOL, reviewer="llm", reviewer_options=options, run_dir=tmp_path / "stop", reviewer_probe=10,
                  require_better_reviewer=True).annotate(data, seed=seed)  # fmt: skip
    assert "interval" not in str(stopped.value) and " -" not in str(stopped.value)
    with pytest.warns(UserWarning, match=f"the reviewer probe measured nothing: {why}; the reviewer's answers are taken as they are"):
        result = Annotator(bare_task, **POOL, reviewer="llm", reviewer_options=options, run_dir=tmp_path / "run", reviewer_probe=10).annotate(data, seed=seed)
    note = result.summary.reviewer
    assert note["review_mode"] == "override" and note["answered"] == 0 and re.search(why, note["note"])
    assert note["probe_items"] == (10 if empty == "failed" else 0)
    reviewed = result.frame[result.frame.reviewed_label.notna()]
    assert len(reviewed) and set(reviewed.label_source) == {"llm"} and (reviewed.label == reviewed.reviewed_label).all()
    assert "answer_overruled" not in note


def test_a_changed_review_mode_is_refused_on_resume(bare_task: Task, seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, server, tmp_path: Path) -> None:
    """Labels concluded under combine are not relabeled by a resumed run under override: the change is refused,
    named; a first pass without a reviewer may still be resumed with one (README: --reviewer none)."""
    url, _ = server
    data, seed = tweets_frame.iloc[:30][["text"]], seed_frame.iloc[:60]
    first = Annotator(bare_task, **POOL, reviewer=None, run_dir=tmp_path / "run").annotate(data, seed=seed)
    assert not first.frame.reviewed_label.notna().any()
    reviewed = Annotator(bare_task, **POOL, reviewer="llm", reviewer_options=llm(url), run_dir=tmp_path / "run", reviewer_probe=10).annotate(data, seed=seed)
    assert reviewed.frame.reviewed_label.notna().any() and reviewed.summary.reviewer["review_mode"] == "combine"
    with pytest.raises(AnnotatorError, match=r"holds a different run \(changed: review_mode, combine -> override"):
        Annotator(bare_task, **POOL, reviewer="llm", reviewer_options=llm(url), run_dir=tmp_path / "run", reviewer_probe=10,
                  review_mode="override").annotate(data, seed=seed)  # fmt: skip


def test_probe_samples_are_nested_and_paid_calls_total_every_session(seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, tmp_path: Path) -> None:
    """A probe killed (SIGKILL) half way and asked again reports every call paid for it, over both sessions; a
    larger probe holds the smaller one (only the new items are paid) and still reports the whole probe's calls."""
    port, log = free_port(), tmp_path / "answered.jsonl"
    httpd = serve(port, log, delay=0.2)
    seed, data = tmp_path / "seed.csv", tmp_path / "in.csv"
    seed_frame.iloc[:80].to_csv(seed, index=False)
    tweets_frame.iloc[:20].to_csv(data, index=False)
    try:
        def estimate(probe: int) -> list[str]:
            return [sys.executable, "-m", "autoannotator", "estimate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(data), "--seed", str(seed),
                    "--specialists", "lexicon", "--rule", "margin", "--epsilon", "0.6", "--reviewer", "llm", "--llm-base-url", f"http://127.0.0.1:{port}/v1",
                    "--llm-model", "gpt-3.5-turbo", "--llm-max-in-flight", "2", "--reviewer-probe", str(probe), "--quiet", "--run-dir", str(tmp_path / "run"),
                    "--output", str(tmp_path / "o.csv"), "--sample", "10", "--curve-folds", "0", "--json", str(tmp_path / "s.json")]  # fmt: skip

        killed = subprocess.Popen(estimate(20), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(tmp_path / "killed.err").open("w"))
        deadline = time.monotonic() + 120
        while len(answered(log)) < 6 and time.monotonic() < deadline and killed.poll() is None:
            time.sleep(0.05)
        killed.kill()
        killed.wait()
        time.sleep(1.0)  # requests the server was answering when the client died
        first = len(answered(log))
        assert 6 <= first < 20, (tmp_path / "killed.err").read_text()
        rerun = subprocess.run(estimate(20), cwd=ROOT, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        paid = sum(u["calls"] for u in RunStore(tmp_path / "run" / STORE_FILE).llm_usage().values())
        figures = json.loads((tmp_path / "s.json").read_text())["reviewer"]
        assert figures["probe_items"] == 20 and figures["calls"] == paid and paid > len(answered(log)) - first
        before_smaller = len(answered(log))
        smaller = subprocess.run(estimate(10), cwd=ROOT, capture_output=True, text=True)
        assert smaller.returncode == 0, smaller.stderr
        assert len(answered(log)) == before_smaller  # nested: the 10 were among the 20 (cached)
        assert json.loads((tmp_path / "s.json").read_text())["reviewer"]["calls"] == paid
        probed = stored_probe(RunStore(tmp_path / "run" / STORE_FILE)).seed_index
        assert len(probed) == 10 and set(probed) <= set(probe_indices(80, 20, 0))
    finally:
        httpd.shutdown()


def test_probe_indices_nest() -> None:
    for seed in range(5):
        small, large = probe_indices(200, 30, seed, exclude=[3, 7]), probe_indices(200, 60, seed, exclude=[3, 7])
        assert len(set(small)) == 30 and set(small) < set(large) and not {3, 7} & set(large)
    assert probe_indices(200, 30, 0) != probe_indices(200, 30, 1)


def test_the_human_reviewer_without_a_terminal_is_one_line(seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, tmp_path: Path) -> None:
    """No terminal (stdin /dev/null, no controlling tty): one line, exit 2, before any training, probe or output."""
    seed, data = tmp_path / "seed.csv", tmp_path / "in.csv"
    seed_frame.iloc[:40].to_csv(seed, index=False)
    tweets_frame.iloc[:20].to_csv(data, index=False)
    base = [sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(data), "--seed", str(seed),
            "--specialists", "lexicon", "--rule", "margin", "--epsilon", "0.6", "--reviewer", "human", "--quiet", "--output", str(tmp_path / "o.csv")]  # fmt: skip
    for extra in ([], ["--reviewer-probe", "5"]):
        done = subprocess.run([*base, *extra, "--run-dir", str(tmp_path / f"run{len(extra)}")], cwd=ROOT, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, start_new_session=True)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().startswith("error: the human reviewer answers in a terminal and this process has none")
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert not (tmp_path / "o.csv").exists() and not (tmp_path / f"run{len(extra)}" / STORE_FILE).exists()


def test_terminal_review_without_a_terminal_is_one_line(tweets_frame: pd.DataFrame, tmp_path: Path) -> None:
    """`review --run-dir` (the terminal review of what waits) without a terminal: one line, exit 2, nothing answered."""
    data = tmp_path / "in.csv"
    tweets_frame.iloc[:30].to_csv(data, index=False)
    first = subprocess.run([sys.executable, "-m", "autoannotator", "annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(data),
                            "--specialists", "lexicon", "--rule", "margin", "--epsilon", "0.6", "--quiet", "--output", str(tmp_path / "o.csv"),
                            "--run-dir", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert first.returncode == 0, first.stderr
    waiting = len(RunStore(tmp_path / "run" / STORE_FILE).pending_review())
    assert waiting
    done = subprocess.run([sys.executable, "-m", "autoannotator", "review", "--run-dir", str(tmp_path / "run")], cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, start_new_session=True)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().startswith("error: the human reviewer answers in a terminal"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and len(RunStore(tmp_path / "run" / STORE_FILE).pending_review()) == waiting
