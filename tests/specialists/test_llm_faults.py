"""The `llm` specialist against a real local HTTP server that misbehaves on purpose (tests/fault_server.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.errors import AnnotatorError
from autoannotator.llm.server import free_port
from autoannotator.specialists import create_specialist
from autoannotator.store import STORE_FILE, RunStore
from tests.fault_server import serve
from tests.reviewers.test_llm_faults import TEXTS, answered

FAST = {"timeout_s": 2.0, "max_retries": 3, "model": "gpt-3.5-turbo"}
@pytest.fixture()
def task(task: Task) -> Task:
    return task.model_copy(update={"id_column": None})


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("autoannotator.llm.client.ChatClient._backoff", lambda self, attempt, exc: 0.05)
    port, log = free_port(), tmp_path / "answered.jsonl"
    httpd = serve(port, log, timeout_sleep=5.0)
    yield f"http://127.0.0.1:{port}/v1", log
    httpd.shutdown()


def test_every_item_gets_a_vote_or_an_abstention_with_its_reason(task: Task, server, tmp_path: Path) -> None:
    url, log = server
    voter = {"kind": "llm", "name": "gpt", "options": {"base_url": url, **FAST}}
    annotator = Annotator(task, specialists=[voter, "lexicon"], run_dir=tmp_path / "run")
    texts = [*TEXTS, "too long [400]", "down [500-always]"]
    out = annotator.annotate(pd.DataFrame({"text": texts})).frame.set_index("text")
    votes = {text: json.loads(v)["gpt"] for text, v in out["votes"].items()}
    for text, vote in votes.items():
        assert (vote["label"] in task.label_names and "reason" not in vote) or (vote["label"] is None and vote["reason"]), text
    assert votes["a fine day [outside]"] == {"label": None, "p": 0.0, "reason": "out_of_set", "parsed": 0, "samples": 1, "asks": 1,
                                             "last_answer": '{"label": "banana"}'}  # fmt: skip
    assert votes["too long [400]"]["reason"] == "http_400" and votes["down [500-always]"]["reason"] == "retries_exhausted"
    for text in ("great game [timeout-once]", "what a happy day [429-once]", "feeling sick [500-twice]",
                 "nice weather [malformed-once]", "bus schedule [empty-once]"):  # fmt: skip
        assert votes[text]["label"] is not None, text  # each fault was retried until a valid answer came
    # the probability comes from the answer's logprobs: exp(-0.1) against the runner-up's exp(-2.5)
    assert votes["I love this song"]["p"] == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.5)), abs=1e-4)
    assert set(out["label_source"]) <= {"consensus", "unresolved"}  # no reviewer: disagreements stay unresolved
    store = RunStore(tmp_path / "run" / STORE_FILE)
    usage = store.llm_usage()
    store.close()
    assert set(usage) == {"specialist:gpt"}  # the ledger line is the specialist's
    assert usage["specialist:gpt"]["calls"] == len(answered(log)) == len(TEXTS)  # the two refused/failing ones were never paid
    assert usage["specialist:gpt"]["failed"] + usage["specialist:gpt"]["lost"] >= 6  # refused (failed) or sent and never answered (lost)
    assert usage["specialist:gpt"]["cost_usd"] > 0  # priced as gpt-3.5-turbo


def test_a_rerun_is_answered_from_the_run_store(task: Task, server, tmp_path: Path) -> None:
    url, log = server
    texts = ["I love this song", "so sad today", "the meeting is at noon"]
    store = RunStore.open(tmp_path / "run", {"test": 1})
    first = create_specialist("llm", task, base_url=url, **FAST)
    first.attach(store, "gpt")
    probs, _ = first.predict_with_details(texts)
    store.close()
    assert len(answered(log)) == 3
    store = RunStore.open(tmp_path / "run", {"test": 1})  # another process, the same run store
    again = create_specialist("llm", task, base_url=url, **FAST)
    again.attach(store, "gpt")
    probs_again, details = again.predict_with_details(texts)
    assert len(answered(log)) == 3  # zero new requests
    assert (probs_again == probs).all() and details[0]["answer"] == "positive"
    assert store.llm_usage()["specialist:gpt"]["cache_hits"] == 3
    store.close()


def test_self_consistency_over_samples(task: Task, server, tmp_path: Path) -> None:
    url, log = server
    store = RunStore.open(tmp_path / "run", {"test": 1})
    voter = create_specialist("llm", task, base_url=url, samples=3, answer_retries=1, **FAST)
    voter.attach(store, "sc")
    probs, details = voter.predict_with_details(["I love it [outside-once]", "a fine day [outside]"])
    store.close()
    requests = answered(log)
    assert len(requests) == 2 * 3 * 2  # three samples each, each sample's first answer outside the set and re-asked once
    assert probs[0].tolist() == [0.0, 0.0, 1.0] and details[0]["parsed"] == 3 and details[0]["asks"] == 6  # each re-asked once
    assert probs[1].tolist() == [0.0, 0.0, 0.0] and details[1]["reason"] == "out_of_set"
    assert details[0]["samples"] == details[1]["samples"] == 3


def test_a_refused_client_stops_the_run(task: Task, server, tmp_path: Path) -> None:
    url, _ = server
    voter = {"kind": "llm", "name": "gpt", "options": {"base_url": url, **FAST}}
    with pytest.raises(AnnotatorError, match="HTTP 401"):
        Annotator(task, specialists=[voter], run_dir=tmp_path / "run").annotate(pd.DataFrame({"text": ["who am I [401]"]}))


def test_one_answer_whose_logprobs_favour_another_label_keeps_the_answer() -> None:
    """A model answered 'agrees' with 30% confidence (the rest spread on the others): the answer is the label, not a
    crash (StopIteration inside the client's coroutine, seen replaying GPT-4o's low-confidence answers)."""
    from autoannotator.llm.sampling import Sample, self_consistency

    judged = self_consistency([Sample("agrees", None, {"agrees": 0.3, "disagrees": 0.35, "neutral": 0.35}, '{"label": "agrees"}', 1)],
                              ["agrees", "disagrees", "neutral"])  # fmt: skip
    assert judged.label == "agrees" and judged.probs["disagrees"] == 0.35


def test_llm_only_self_consistency_from_the_command_line(server, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autoannotator.cli import app
    from tests.conftest import EXAMPLE

    url, log = server
    pd.DataFrame({"id": ["1", "2"], "text": ["I love it", "a fine day [outside]"]}).to_csv(tmp_path / "in.csv", index=False)
    result = CliRunner().invoke(app, ["annotate", "--task", str(EXAMPLE / "task.yaml"), "--input", str(tmp_path / "in.csv"),
                                      "--output", str(tmp_path / "out.csv"), "--mode", "llm-only", "--reviewer", "llm",
                                      "--llm-base-url", url, "--llm-model", "gpt-3.5-turbo", "--llm-samples", "3", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "out.csv")
    assert out.loc[0, "label"] == "positive" and out.loc[0, "label_source"] == "llm"
    assert out.loc[1, "label_source"] == "unresolved" and out.loc[1, "reason"] == "out_of_set"
    assert len(answered(log)) == 3 + 3 * 3  # three samples each; the outside ones re-asked twice (answer_retries 2)
    store = RunStore(tmp_path / "out.csv.run" / STORE_FILE)
    assert store.reviews(0)[-1]["probs"] == {"negative": 0.0, "neutral": 0.0, "positive": 1.0}
    store.close()


def test_refinement_leaves_llm_specialists_as_they_are_and_says_so(task: Task, server, tweets_frame, seed_frame, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autoannotator.cli import app

    url, _ = server
    voter = {"kind": "llm", "name": "gpt", "options": {"base_url": url, **FAST}}
    annotator = Annotator(task, specialists=["tfidf", voter], reviewer="gold:gold_label", run_dir=tmp_path / "run",
                          chunk_size=20, refine={"beta": 10, "gate_fraction": 0.0})  # fmt: skip
    summary = annotator.annotate(tweets_frame.iloc[:40], seed=seed_frame).summary
    assert summary.rounds and all([v["name"] for v in r["details"]] == ["tfidf"] for r in summary.rounds)
    assert summary.not_refined == ["gpt"]
    versions = CliRunner().invoke(app, ["versions", "--run-dir", str(tmp_path / "run")])
    assert "never refined (not trainable here, e.g. llm specialists): gpt" in " ".join(versions.output.split())


def test_a_multiple_choice_seed_s_rationales_reach_the_few_shot_prompts(server, tmp_path: Path) -> None:
    url, _ = server
    task = Task.from_dict({"name": "math", "type": "multiple_choice"})
    seed = pd.DataFrame({"question": ["1 + 1?", "2 + 3?"], "options": ["A)2 B)3", "A)4 B)5"], "gold": ["A", "B"],
                         "rationale": ["one and one make two", ""]})  # fmt: skip
    voter = {"kind": "llm", "name": "gpt", "options": {"base_url": url, **FAST, "prompt": "cot", "shots": 2}}
    annotator = Annotator(task, specialists=[voter], run_dir=tmp_path / "run", seed_label_column="gold")
    out = annotator.annotate(pd.DataFrame({"question": ["3 + 3?"], "options": [["5", "6"]]}), seed=seed).frame
    examples = annotator.specialists["gpt"].examples
    assert [(e.label, e.rationale) for e in examples] == [("A", "one and one make two"), ("B", None)]
    assert json.loads(out.loc[0, "votes"])["gpt"]["reason"] == "no_answer_line"  # the keyword server answers no letter
