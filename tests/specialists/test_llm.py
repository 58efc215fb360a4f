"""The `llm` specialist on real models: llama.cpp's OpenAI-compatible server and the embedded GGUF (SmolLM2-135M)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.llm.server import llama_server
from autoannotator.store import STORE_FILE, RunStore
from tests.conftest import FIXTURES

MATH = Task.from_dict({"name": "math", "type": "multiple_choice", "instruction": "Solve the math word problem."})


def problems(n: int) -> pd.DataFrame:
    lines = (FIXTURES / "aqua_rat_test_slice.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= n, f"the fixture holds {len(lines)} problems, {n} asked for"
    rows = [json.loads(line) for line in lines[:n]]
    return pd.DataFrame({"question": [r["question"] for r in rows], "options": [" ".join(r["options"]) for r in rows],
                         "gold": [r["correct"] for r in rows]})  # fmt: skip


@pytest.fixture(scope="module")
def server_url():
    with llama_server("smollm2-135m") as url:
        yield url


def usage(run_dir: Path) -> dict:
    store = RunStore(run_dir / STORE_FILE)
    try:
        return store.llm_usage()
    finally:
        store.close()


@pytest.mark.slow
def test_multiple_choice_voter_on_llama_server_and_a_cached_rerun(server_url: str, tmp_path: Path) -> None:
    frame = problems(3)
    frame.loc[2, "options"] = "21 or 22"  # unparsable options: the item is never guessed
    voter = {"kind": "llm", "name": "smol", "options": {"base_url": server_url, "model": "smollm2-135m", "structured": "json_object"}}
    out = Annotator(MATH, specialists=[voter], run_dir=tmp_path / "run").annotate(frame).frame
    for row in out.itertuples():
        vote = json.loads(row.votes).get("smol")
        if row.Index == 2:
            assert row.label_source == "unresolved" and row.reason == "options_unparsed" and vote is None
        else:  # the json_object schema holds the grammar to one letter of the item's options
            assert vote["label"] in "ABCDE" and row.label == vote["label"] and row.label_source == "consensus"
    first = usage(tmp_path / "run")["specialist:smol"]
    assert first["calls"] == 2 and first["prompt_tokens"] > 100 and first["cost_usd"] is None  # not priced: unknown
    with RunStore(tmp_path / "run" / STORE_FILE).transaction() as conn:  # as if the run died before its chunk was stored
        conn.execute("DELETE FROM items")
    Annotator(MATH, specialists=[voter], run_dir=tmp_path / "run").annotate(frame)
    again = usage(tmp_path / "run")["specialist:smol"]
    assert again["calls"] == 2 and again["cache_hits"] == 2  # zero new requests


@pytest.mark.slow
def test_mixed_pool_of_classifiers_and_an_llm_voter(task: Task, seed_frame: pd.DataFrame, server_url: str, tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["I love this so much!", "This is the worst day ever.", "The bus leaves at 5 pm."]})
    voter = {"kind": "llm", "name": "smol", "options": {"base_url": server_url, "model": "smollm2-135m", "structured": "json_object"}}
    annotator = Annotator(task.model_copy(update={"id_column": None}), specialists=["tfidf", "lexicon", voter],
                          reviewer="none", run_dir=tmp_path / "run")  # fmt: skip
    out = annotator.annotate(frame, seed=seed_frame).frame
    for row in out.itertuples():
        votes = json.loads(row.votes)
        assert sorted(votes) == ["lexicon", "smol", "tfidf"] and votes["smol"]["label"] in task.label_names
        labels = [v["label"] for v in votes.values()]
        top = max(labels.count(y) for y in set(labels))
        assert row.uncertainty == pytest.approx(1 - top / 3, abs=1e-6)  # eq. 4 over all three voters
        assert (row.label_source == "consensus") == (top == 3)
    assert usage(tmp_path / "run")["specialist:smol"]["calls"] == 3


@pytest.mark.slow
def test_embedded_voter_runs_in_process(tmp_path: Path) -> None:
    voter = {"kind": "llm", "name": "local", "options": {"model": "smollm2-135m"}}
    out = Annotator(MATH, specialists=[voter], run_dir=tmp_path / "run").annotate(problems(2)).frame
    assert all(json.loads(v)["local"]["label"] in "ABCDE" for v in out["votes"])
    assert usage(tmp_path / "run")["specialist:local"]["calls"] == 2
