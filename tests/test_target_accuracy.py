"""--target-accuracy and --audit: the statistics on seeded synthetic data with known accuracy, then the run itself
(a shifted seed, the audit guard) with the real lexicon and tfidf specialists and a gold reviewer."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rich.console import Console

from autoannotator import Annotator, Task
from autoannotator.display import show_summary
from autoannotator.audit import audit_draw, audit_figures, judge
from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.specialists import create_specialist
from autoannotator.target_accuracy import accepted, certify
from tests.conftest import EXAMPLE
from tests.reviewers.test_reviewer_probe import llm, server  # noqa: F401 - the keyword-answering server, a fixture

TRIALS = 200


def synthetic(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """U from a beta distribution and a consensus label right with probability 1 - 0.9 U (known accuracy curve)."""
    u = rng.beta(1.2, 4.0, n)
    return u, rng.random(n) < 1.0 - 0.9 * u


def true_accuracy(threshold: float | None) -> float:
    """Accuracy of the items accepted at `threshold` under `synthetic`, by numerical integration over U."""
    from scipy.stats import beta

    if threshold is None:
        return 1.0
    grid = np.linspace(0, threshold, 4001)
    density = beta(1.2, 4.0).pdf(grid)
    return float(np.trapezoid(density * (1 - 0.9 * grid), grid) / np.trapezoid(density, grid))


@pytest.mark.parametrize(("target", "confidence"), [(0.9, 0.9), (0.85, 0.8)])
def test_the_certified_threshold_holds_its_accuracy_in_at_least_the_confidence_share_of_trials(target: float, confidence: float) -> None:
    rng = np.random.default_rng(11)
    held, shares = 0, []
    for _ in range(TRIALS):
        certificate = certify(*synthetic(rng, 500), target=target, confidence=confidence)
        held += true_accuracy(certificate.threshold) >= target
        shares.append(certificate.seed_accepted_share)
    assert held / TRIALS >= confidence, held / TRIALS
    assert np.mean(shares) > 0.05  # not vacuous: it does accept items


def test_a_target_the_seed_cannot_support_accepts_nothing() -> None:
    u, correct = synthetic(np.random.default_rng(0), 500)
    certificate = certify(u, correct, target=0.995, confidence=0.9)
    assert certificate.threshold is None and not accepted(u, None).any()
    assert certify(np.zeros(10), np.ones(10, bool), target=0.9, confidence=0.9).threshold is None  # 10 items cannot certify 90% at 90%


def test_the_audit_interval_covers_the_true_accuracy_in_at_least_90_percent_of_trials() -> None:
    rng = np.random.default_rng(5)
    covered, n_accepted = 0, 3000
    for trial in range(TRIALS):
        truth = rng.uniform(0.6, 0.97)
        right = rng.random(n_accepted) < truth
        audited = audit_draw(range(n_accepted), 0.05, seed=trial)
        frame = pd.DataFrame({"label": "a", "label_source": np.where(audited, "gold", "consensus"), "consensus_label": "a",
                              "reviewed_label": np.where(audited, np.where(right, "a", "b"), None), "audited": audited})  # fmt: skip
        interval = audit_figures(frame)["accepted_accuracy"]
        covered += interval["low"] <= right.mean() <= interval["high"]
    assert covered / TRIALS >= 0.9


def test_with_an_llm_reviewer_the_audit_says_it_measures_agreement_with_the_llm() -> None:
    frame = pd.DataFrame({"label": ["a", "b", "a"], "label_source": ["llm+consensus", "llm", "consensus"], "consensus_label": ["a", "a", "a"],
                          "reviewed_label": ["a", "b", None], "audited": [True, True, False]})  # fmt: skip
    figures = audit_figures(frame)
    assert figures["reference"] == ["llm", "llm+consensus"] and "agreement with the LLM" in figures["note"]
    assert (figures["n_audited"], figures["n_answered"], figures["n_agree"]) == (2, 2, 1)
    assert figures["accepted_accuracy"]["estimate"] == 0.5 and audit_figures(frame.assign(audited=False)) is None


def test_the_whole_output_counts_a_reviewed_item_right_only_where_its_label_is_the_reviewers_answer() -> None:
    """Under --review-mode combine the pool can overrule the reviewer (llm+consensus): such a label is not the
    reviewer's, so it counts as wrong against the reviewer as reference, as an audited item's does."""
    frame = pd.DataFrame({
        "label":           ["a",   "a",             "a",             "a",             "a",   "a",         "a",         "a"],
        "label_source":    ["llm", "llm+consensus", "llm+consensus", "llm+consensus", "llm", "consensus", "consensus", "consensus"],
        "consensus_label": ["b",   "a",             "a",             "a",             "a",   "a",         "a",         "a"],
        "reviewed_label":  ["a",   "b",             "c",             "b",             "a",   None,        None,        None],
        "audited":         [False, False,           False,           True,            True,  False,       False,       False],
    })  # fmt: skip
    figures = audit_figures(frame)
    assert (figures["n_answered"], figures["n_agree"]) == (2, 1) and "agreement with the LLM" in figures["note"]
    # right: rows 0 and 4 (label = answer); the three consensus labels at the audited rate 1/2; of 8 labeled
    assert figures["output_accuracy"]["estimate"] == pytest.approx((2 + 3 * 0.5) / 8, abs=1e-4)
    unanswered = frame.assign(reviewed_label=None, label_source=["llm", "llm", "llm", "consensus", "consensus", "consensus", "consensus", "consensus"])
    nothing = audit_figures(unanswered)
    assert nothing["n_answered"] == 0 and nothing["accepted_accuracy"] is None and nothing["output_accuracy"] is None


def test_the_audit_draw_is_seeded_per_row_whatever_the_chunks() -> None:
    whole = audit_draw(range(1000), 0.1, seed=3)
    chunked = np.concatenate([audit_draw(range(s, min(s + 37, 1000)), 0.1, seed=3) for s in range(0, 1000, 37)])
    assert (whole == chunked).all() and 60 < whole.sum() < 140
    assert (whole != audit_draw(range(1000), 0.1, seed=4)).any()


def test_the_guard_lowers_the_threshold_to_where_the_audit_reaches_the_target() -> None:
    u = np.linspace(0.01, 0.5, 60)
    agree = u < 0.25  # right below 0.25, wrong above
    verdict = judge(u, agree, threshold=0.5, target=0.9)
    breached, lowered = verdict.breached, verdict.threshold
    assert breached and 0.24 <= lowered < 0.5
    calm = judge(u[:20], agree[:20], threshold=0.5, target=0.9)
    assert (calm.breached, calm.threshold) == (False, 0.5)  # all right: nothing to do


def test_the_command_line_refuses_a_target_without_the_learned_rule_in_one_line(tmp_path: Path) -> None:
    done = cli("annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(EXAMPLE / "tweets.csv"), "--output", str(tmp_path / "o.csv"),
               "--specialists", "lexicon", "--rule", "margin", "--target-accuracy", "0.9", "--reviewer", "gold:gold_label")  # fmt: skip
    assert done.returncode == 2 and "--target-accuracy needs --rule learned" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--rule", "learned", "--budget", "0.2", "--confidence", "0.8", "--reviewer", "gold:gold_label"],
     "error: --confidence is the probability with which --target-accuracy holds"),
    (["--rule", "learned", "--target-accuracy", "0.8", "--reviewer", "none"],
     "error: --target-accuracy sends the items above its certified threshold"),
    (["--mode", "llm-only", "--reviewer", "human", "--reviewer-probe", "10"],
     "error: --reviewer-probe and --require-better-reviewer measure the reviewer against the specialists: --mode llm-only has none"),
    (["--mode", "llm-only", "--reviewer", "human", "--reviewer-probe", "10", "--require-better-reviewer"],
     "error: --reviewer-probe and --require-better-reviewer measure the reviewer against the specialists: --mode llm-only has none"),
], ids=["confidence-alone", "target-without-reviewer", "llm-only-probe", "llm-only-require-better"])  # fmt: skip
def test_the_command_line_refuses_flags_it_could_not_honour_in_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    done = cli("annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(EXAMPLE / "tweets.csv"), "--output", str(tmp_path / "o.csv"),
               "--seed", str(EXAMPLE / "seed.csv"), "--specialists", "lexicon", *flags)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().startswith(message) and len(done.stderr.strip().splitlines()) == 1
    assert "--audit" not in done.stderr and not (tmp_path / "o.csv").exists()


def test_target_accuracy_needs_the_learned_rule_a_seed_and_no_epsilon(task: Task, tmp_path: Path) -> None:
    with pytest.raises(AnnotatorError, match="needs --rule learned"):
        Annotator(task, specialists=["lexicon"], run_dir=tmp_path, rule="margin", target_accuracy=0.9, reviewer="gold:gold_label")
    with pytest.raises(AnnotatorError, match="leave out --epsilon"):
        Annotator(task, specialists=["lexicon"], run_dir=tmp_path, rule="learned", epsilon=0.3, target_accuracy=0.9, reviewer="gold:gold_label")
    with pytest.raises(AnnotatorError, match="--target-accuracy sends the items above its certified threshold .* to a reviewer: give one"):
        Annotator(task, specialists=["lexicon"], run_dir=tmp_path, rule="learned", target_accuracy=0.9)
    with pytest.raises(AnnotatorError, match="--target-accuracy sends the items above its certified threshold to a reviewer"):
        Annotator(task, specialists=["lexicon"], run_dir=tmp_path, rule="learned", target_accuracy=0.9, audit=0.1)
    with pytest.raises(AnnotatorError, match="--audit sends items to the reviewer"):
        Annotator(task, specialists=["lexicon"], run_dir=tmp_path, rule="margin", epsilon=0.3, audit=0.1)
    with pytest.raises(AnnotatorError, match="--confidence is the probability with which --target-accuracy holds"):
        Annotator(task, specialists=["lexicon"], run_dir=tmp_path, rule="learned", budget=0.2, confidence=0.8, reviewer="gold:gold_label")
    run = Annotator(task, specialists=["lexicon"], run_dir=tmp_path, rule="learned", target_accuracy=0.9, reviewer="gold:gold_label")
    assert run.settings.audit == 0.05  # the audit is on by default with a target
    with pytest.raises(AnnotatorError, match="certified on a labeled seed"):
        run.annotate(pd.DataFrame({"id": ["a", "b"], "text": ["good", "bad"], "gold_label": ["positive", "negative"]}))


def easy_seed(task: Task, seed: pd.DataFrame) -> pd.DataFrame:
    """A seed drawn unlike the input: only the items the lexicon gets right with confidence (a selection bias), and
    the first 10 of each label it then lacks (the learned rule refuses a target when a label is missing)."""
    probs = create_specialist("lexicon", task).predict_proba(seed["text"].tolist())
    guessed = np.array(task.label_names)[probs.argmax(axis=1)]
    easy = seed[(guessed == seed["label"].to_numpy()) & (probs.max(axis=1) > 0.6)]
    lacking = [seed[seed["label"] == name].head(10) for name in task.label_names if name not in set(easy["label"])]
    return pd.concat([easy, *lacking])


def test_a_label_missing_from_the_seed_is_refused_under_a_target_and_warned_without(task: Task, tweets_frame: pd.DataFrame,
                                                                                    seed_frame: pd.DataFrame, tmp_path: Path) -> None:  # fmt: skip
    """Issue 20 #9: the learned rule can never give a label its seed lacks; a target accuracy would promise what it cannot."""
    seed = seed_frame[seed_frame["label"] != "neutral"]
    frame = tweets_frame.iloc[:200]
    with pytest.raises(AnnotatorError, match=r"the seed has no item labeled \['neutral'\].*cannot certify"):
        Annotator(task, specialists=["lexicon", "tfidf"], reviewer="gold:gold_label", run_dir=tmp_path / "t", rule="learned",
                  target_accuracy=0.7).annotate(frame, seed=seed)  # fmt: skip
    with pytest.warns(InputWarning, match=r"the seed has no item labeled \['neutral'\]: the learned consensus can never give that label"):
        result = Annotator(task, specialists=["lexicon", "tfidf"], run_dir=tmp_path / "b", rule="learned", budget=0.0).annotate(frame, seed=seed)
    assert "neutral" not in set(result.frame["label"])


@pytest.mark.slow
def test_a_seed_drawn_unlike_the_input_breaks_the_audit_and_the_run_says_so_and_reviews_more(
    task: Task, tweets_frame: pd.DataFrame, seed_frame: pd.DataFrame, tmp_path: Path
) -> None:  # fmt: skip
    seed = easy_seed(task, seed_frame)
    frame = tweets_frame.iloc[:1500]
    def run() -> Annotator:
        return Annotator(task, specialists=["lexicon", "tfidf"], reviewer="gold:gold_label", run_dir=tmp_path / "run", rule="learned",
                         target_accuracy=0.8, audit=0.1, chunk_size=150)  # fmt: skip

    with pytest.warns(UserWarning, match="below the target accuracy 80.0% .anytime-valid test.*(raised|every item goes to review)"):
        result = run().annotate(frame, seed=seed)
    target = result.summary.target_accuracy
    assert target["certificate"]["seed_accuracy"] >= 0.8 and target["guard"] and not target["holds"]
    first = target["guard"][0]
    assert first["audited_accuracy"] < 0.8 and (first["threshold_after"] is None or first["threshold_after"] < first["threshold_before"])
    labeled = result.frame
    after = first["after_items"]
    reviewed = labeled["label_source"] != "consensus"
    assert reviewed.iloc[after:].mean() > reviewed.iloc[:after].mean() + 0.05  # the threshold went up for the rest of the run
    assert result.summary.audit["accepted_accuracy"]["estimate"] < 0.8
    console = Console(record=True, width=300)
    show_summary(console, result.summary)
    shown = console.export_text()
    assert "guarantee: broken by the audit" in shown and "audit guard after" in shown and "assuming" not in shown
    again = run().annotate(frame, seed=seed).summary  # a resumed run keeps the raised threshold and the guard's events
    assert again.target_accuracy["threshold"] == target["threshold"] and again.target_accuracy["guard"] == target["guard"]
    assert again.audit == result.summary.audit


def cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(EXAMPLE.parents[1] / "src")}
    return subprocess.run([sys.executable, "-m", "autoannotator", *args], capture_output=True, text=True, env=env, timeout=600, **kwargs)


@pytest.mark.slow
def test_audited_items_are_marked_and_counted_end_to_end_and_evaluate_estimates_without_gold(tmp_path: Path) -> None:
    data = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:400].to_csv(data, index=False)
    out, summary = tmp_path / "labeled.csv", tmp_path / "summary.json"
    done = cli("annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(data), "--output", str(out), "--specialists", "lexicon",
               "--rule", "margin", "--budget", "0.3", "--audit", "0.2", "--reviewer", "gold:gold_label", "--quiet", "--summary-json", str(summary))  # fmt: skip
    assert done.returncode == 0, done.stderr
    labeled = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(labeled.columns)[-2:] == ["reason", "audited"]
    audited = labeled["audited"] == "True"
    figures = json.loads(summary.read_text())
    audit = figures["audit"]
    assert audit["share"] == 0.2 and audit["n_audited"] == audited.sum() == audit["n_answered"] > 0
    assert (labeled.loc[audited, "label_source"] == "gold").all() and (labeled.loc[audited, "reviewed_label"] == labeled.loc[audited, "gold_label"]).all()
    truth = (labeled["consensus_label"] == labeled["gold_label"])[audited].mean()
    assert audit["accepted_accuracy"]["estimate"] == pytest.approx(truth, abs=1e-4) and audit["reference"] == ["gold"]
    assert figures["target_accuracy"] == {} and "audit: " in done.stdout and "(+ " in done.stdout  # the budget line shows audits apart
    routed = (labeled["label_source"] != "consensus") & ~audited
    assert abs(routed.mean() - 0.3) <= 0.01  # audits are reviewed on top of the budget
    no_gold = cli("evaluate", str(out), "--json", str(tmp_path / "scores.json"))
    assert no_gold.returncode == 0, no_gold.stderr
    assert json.loads((tmp_path / "scores.json").read_text())["audit"] == {k: v for k, v in audit.items() if k != "share"}
    assert "audit: " in no_gold.stdout and "accuracy against the reviewer's labels" in no_gold.stdout
    plain = tmp_path / "plain.csv"
    labeled.drop(columns=["audited"]).to_csv(plain, index=False)
    refused = cli("evaluate", str(plain))
    assert refused.returncode == 2 and "no audited items" in refused.stderr


@pytest.mark.slow
def test_a_killed_audited_run_resumes_without_auditing_or_paying_twice(tmp_path: Path) -> None:
    data = tmp_path / "tweets.csv"
    pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:1200].to_csv(data, index=False)
    out, run_dir = tmp_path / "labeled.csv", tmp_path / "run"
    args = ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(data), "--output", str(out), "--specialists", "lexicon",
            "--rule", "margin", "--budget", "0.2", "--audit", "0.1", "--reviewer", "gold:gold_label", "--run-dir", str(run_dir),
            "--chunk-size", "100", "--quiet"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(EXAMPLE.parents[1] / "src")}
    killed = subprocess.run([sys.executable, "-m", "tests.kill_after_commit", "INSERT INTO items", "4", "--", *args],
                            capture_output=True, text=True, env=env, timeout=600, cwd=EXAMPLE.parents[1])  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        before = dict(conn.execute("SELECT row, audited FROM items WHERE audited = 1").fetchall())
    assert before  # audits were drawn and stored before the kill
    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        answers = conn.execute("SELECT row, COUNT(*) FROM reviews GROUP BY row HAVING COUNT(*) > 1").fetchall()
        audited_after = dict(conn.execute("SELECT row, audited FROM items WHERE audited = 1").fetchall())
    assert answers == []  # no item asked twice
    assert before.items() <= audited_after.items()
    labeled = pd.read_csv(out, dtype=str, keep_default_na=False)
    audited = labeled["audited"] == "True"
    assert audited.sum() == len(audited_after) and labeled.loc[audited, "label_source"].eq("gold").all()
    expected = audit_draw(range(len(labeled)), 0.1, seed=0) & (labeled["consensus_label"] != "").to_numpy()
    assert set(np.flatnonzero(audited)) <= set(np.flatnonzero(expected))  # the same seeded draw across the kill
    routed = (labeled["label_source"] != "consensus") & ~audited
    assert abs(routed.mean() - 0.2) <= 0.01  # the budget counts routed items, not audits, across the kill


def test_an_audited_run_whose_reviewer_the_pool_overrules_reports_agreement_with_the_reviewer_not_with_its_labels(
    task: Task, seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, server, tmp_path: Path
) -> None:  # fmt: skip
    """On tweets where the keyword server is always wrong, combine keeps the pool's labels (llm+consensus): the
    output's agreement with the LLM counts those as disagreeing, as evaluate's does."""
    from tests.fault_server import keyword_label

    url, _ = server
    bare = task.model_copy(update={"id_column": None})
    seed = seed_frame[seed_frame.text.map(keyword_label) != seed_frame.label].iloc[:120]
    data = tweets_frame[tweets_frame.text.map(keyword_label) != tweets_frame.gold_label].iloc[:80][["text"]]
    with pytest.warns(UserWarning):
        result = Annotator(bare, specialists=["lexicon"], rule="margin", epsilon=0.6, audit=0.5, reviewer="llm", reviewer_options=llm(url),
                           run_dir=tmp_path / "run", reviewer_probe=40).annotate(data, seed=seed)  # fmt: skip
    frame, audit = result.frame, result.summary.audit
    by_reviewer = frame.label.notna() & (frame.label_source != "consensus")
    overruled = by_reviewer & (frame.label != frame.reviewed_label)
    assert overruled.sum() >= 10 and (frame.label_source[overruled] == "llm+consensus").all()
    as_answer = (by_reviewer & ~overruled).sum()
    accepted_now = (frame.label_source == "consensus").sum()
    expected = (as_answer + accepted_now * audit["accepted_accuracy"]["estimate"]) / frame.label.notna().sum()
    assert audit["output_accuracy"]["estimate"] == pytest.approx(expected, abs=1e-3)
    assert audit["output_accuracy"]["high"] < (by_reviewer.sum() + accepted_now) / frame.label.notna().sum()  # not "every reviewed label agrees"
    assert "agreement with the LLM" in audit["note"]


def test_under_an_llm_call_cap_the_hard_items_are_reviewed_before_the_audits_and_the_summary_says_what_was_reviewed(
    task: Task, seed_frame: pd.DataFrame, tweets_frame: pd.DataFrame, server, tmp_path: Path
) -> None:  # fmt: skip
    bare = task.model_copy(update={"id_column": None})
    url, _ = server
    data, seed = tweets_frame.iloc[:100][["text"]], seed_frame.iloc[:150]

    def run(name: str, calls: int):
        return Annotator(bare, specialists=["lexicon"], rule="margin", budget=0.1, audit=0.5, reviewer="llm", reviewer_probe=5,
                         reviewer_options=llm(url) | {"max_calls": calls}, run_dir=tmp_path / name).annotate(data, seed=seed)  # fmt: skip

    short = run("short", 12)  # 5 probe calls, 7 left for 10 hard items: no audit is answered while a hard item waits
    frame = short.frame
    audited = frame.audited.astype(bool)
    hard = ~audited & (frame.label_source != "consensus")
    assert hard.sum() == 10 and frame.reviewed_label[hard].notna().sum() >= 7 and frame.reviewed_label[audited].isna().all()
    assert set(frame.reason[hard & frame.label.isna()]) == {"budget"}
    summary = short.summary
    assert summary.review_fraction == 0.1 and summary.reviewed_fraction == frame.reviewed_label[hard].notna().sum() / 100 < 0.1
    assert summary.audit["n_answered"] == 0 and summary.audit["accepted_accuracy"] is None
    console = Console(record=True, width=300)
    show_summary(console, summary)
    shown = console.export_text()
    assert f"realised {summary.reviewed_fraction:.1%} reviewed; {0.1 - summary.reviewed_fraction:.1%} more sent but left unresolved" in shown
    assert "no audited item answered" in shown
    roomy = run("roomy", 20).frame  # every hard item answered, then audits with the calls left
    hard = ~roomy.audited.astype(bool) & (roomy.label_source != "consensus")
    assert roomy.reviewed_label[hard].notna().all() and roomy.reviewed_label[roomy.audited.astype(bool)].notna().sum() > 0


@pytest.mark.slow
def test_after_a_refinement_refit_the_threshold_is_certified_on_the_seed_items_only(
    task: Task, tweets_frame: pd.DataFrame, seed_frame: pd.DataFrame, tmp_path: Path
) -> None:  # fmt: skip
    """A refit is fitted on the seed and the reviewed (hard, so not drawn like the input) items: the certificate
    uses only the seed's out-of-fold predictions of the refit aggregator, on a fresh run and on resume."""
    from autoannotator.stacking import Aggregator
    from autoannotator.store import STORE_FILE, RunStore

    def run() -> Annotator:
        return Annotator(task, specialists=["tfidf", "lexicon"], reviewer="gold:gold_label", run_dir=tmp_path / "run", rule="learned",
                         target_accuracy=0.7, chunk_size=50, refine={"beta": 100})  # fmt: skip

    result = run().annotate(tweets_frame.iloc[:400], seed=seed_frame)
    store = RunStore(tmp_path / "run" / STORE_FILE)
    active = store.get_meta("aggregator")
    assert result.summary.rounds and active.startswith("consensus/round-")  # a refit happened
    refit = Aggregator.load(tmp_path / "run" / active)
    assert refit.n_seed > len(seed_frame)  # fitted on seed + reviewed items
    certificate = result.summary.target_accuracy["certificate"]
    expected = certify(refit.seed_uncertainty[: len(seed_frame)], refit.seed_correct[: len(seed_frame)], target=0.7, confidence=0.9)
    assert certificate["n_calibration"] == len(seed_frame) and certificate["threshold"] == expected.threshold
    assert run().annotate(tweets_frame.iloc[:400], seed=seed_frame).summary.target_accuracy["certificate"] == certificate


def test_estimate_counts_the_audited_items_in_the_review_share_as_the_run_does(task: Task, tweets_frame: pd.DataFrame, tmp_path: Path) -> None:
    data = tweets_frame.iloc[:400]

    def annotator(name: str) -> Annotator:
        return Annotator(task, specialists=["lexicon"], rule="margin", budget=0.1, audit=0.5, reviewer="gold:gold_label", run_dir=tmp_path / name)

    estimate = annotator("estimate").estimate(data, sample=200, curve_folds=0)
    run = annotator("run").annotate(data).summary
    assert run.review_fraction > 0.4  # 10% routed, and half of the rest audited
    assert estimate.review_fraction.low <= run.review_fraction <= estimate.review_fraction.high
    assert any("include the audit (--audit 0.5" in note for note in estimate.notes)


@pytest.mark.slow
def test_a_target_the_seed_cannot_certify_is_explained_by_estimate_and_never_reported_as_holding(
    task: Task, tweets_frame: pd.DataFrame, seed_frame: pd.DataFrame, tmp_path: Path
) -> None:  # fmt: skip
    def annotator() -> Annotator:  # 500 seed items with tfidf + lexicon certify 0.7, not 0.8 (README)
        return Annotator(task, specialists=["tfidf", "lexicon"], rule="learned", target_accuracy=0.8, audit=0.1, reviewer="gold:gold_label",
                         run_dir=tmp_path / "run")  # fmt: skip

    data = tweets_frame.iloc[:150]
    estimate = annotator().estimate(data, seed=seed_frame, sample=100, curve_folds=0)
    assert estimate.review_fraction.value == 1.0
    assert any(note.startswith("no threshold is certified: 500 seed items cannot show 80.0%") and "every item goes to review" in note for note in estimate.notes)
    summary = annotator().annotate(data, seed=seed_frame).summary
    target = summary.target_accuracy
    assert target["certified_threshold"] is None and target["holds"] is False and target["guarantee"].startswith("none, no threshold is certified")
    assert summary.audit == {"share": 0.1, "n_audited": 0}
    console = Console(record=True, width=300)
    show_summary(console, summary)
    shown = console.export_text()
    assert "guarantee: none" in shown and "assuming" not in shown and "audit: no auto-accepted item was drawn" in shown
