"""The OpenAI-client reviewer against llama.cpp's real server running SmolLM2-135M-Instruct."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.llm.server import llama_server
from autoannotator.store import STORE_FILE, RunStore


@pytest.fixture(scope="module")
def server_url():
    with llama_server("smollm2-135m") as url:
        yield url


@pytest.fixture()
def task(task: Task) -> Task:
    return task.model_copy(update={"id_column": None})


@pytest.mark.slow
@pytest.mark.parametrize("prompt", ["zero-shot", "k-shot"])
def test_structured_answers_from_a_real_server(task: Task, server_url: str, prompt: str, tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["I love this so much!", "This is the worst day ever.", "The bus leaves at 5 pm."]})
    options = {"base_url": server_url, "model": "smollm2-135m", "structured": "json_object", "prompt": prompt, "shots": 3}
    result = Annotator(task, mode="llm-only", reviewer="llm", reviewer_options=options, run_dir=tmp_path / "r").annotate(frame)
    assert set(result.frame["label_source"]) == {"llm"}  # the grammar keeps answers inside the label set
    assert result.frame["label"].isin(task.label_names).all()
    usage = result.summary.llm["smollm2-135m"]
    assert usage["calls"] == 3 and usage["prompt_tokens"] > 50 and usage["completion_tokens"] > 0
    assert usage["cost_usd"] is None  # not in the price table: unknown, never $0


@pytest.mark.slow
def test_cot_prompt_parses_the_final_line_or_leaves_unresolved(task: Task, server_url: str, tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["I love this so much!", "This is the worst day ever."]})
    options = {"base_url": server_url, "model": "smollm2-135m", "prompt": "cot", "max_tokens": 120, "answer_retries": 1}
    result = Annotator(task, mode="llm-only", reviewer="llm", reviewer_options=options, run_dir=tmp_path / "r").annotate(frame)
    for _, row in result.frame.iterrows():
        assert (row.label_source == "llm" and row.label in task.label_names) or (row.label_source == "unresolved" and pd.isna(row.label))


@pytest.mark.slow
def test_a_text_over_the_context_is_that_items_failure_and_the_run_goes_on(task: Task, server_url: str, tmp_path: Path) -> None:
    too_long = "This is the worst day ever. " * 400  # about 2,800 tokens: over the server's 2,048-token context
    frame = pd.DataFrame({"text": ["I love this so much!", too_long, "The bus leaves at 5 pm."]})
    options = {"base_url": server_url, "model": "smollm2-135m", "structured": "json_object"}
    result = Annotator(task, mode="llm-only", reviewer="llm", reviewer_options=options, run_dir=tmp_path / "r").annotate(
        frame, output=tmp_path / "out.csv"
    )
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["label_source"].tolist() == ["llm", "unresolved", "llm"]
    assert out.loc[1, "reason"] == "http_400" and result.summary.reasons == {"http_400": 1}
    store = RunStore(tmp_path / "r" / STORE_FILE)
    detail = store.reviews(1)[-1]["detail"]
    store.close()
    assert detail["status"] == 400 and "context" in detail["error"].lower()  # llama.cpp's own reason
