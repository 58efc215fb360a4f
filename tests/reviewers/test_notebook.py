"""The Python API's LLM reviewer where an event loop already runs: inside a coroutine, and in a real Jupyter kernel."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import nbclient
import nbformat
import pandas as pd
import pytest

from autoannotator import Annotator, Task
from autoannotator.llm.server import free_port
from tests.conftest import EXAMPLE, ROOT
from tests.fault_server import serve

TEXTS = ["I love this song", "so sad today", "I love this song", "feeling sick [500-twice]"]
OPTIONS = {"timeout_s": 5.0, "max_retries": 3, "backoff_base_s": 0.05, "backoff_cap_s": 0.2, "model": "gpt-3.5-turbo"}


@pytest.fixture()
def server_url(tmp_path: Path):
    port = free_port()
    httpd = serve(port, tmp_path / "answered.jsonl")
    yield f"http://127.0.0.1:{port}/v1"
    httpd.shutdown()


def test_annotate_with_the_llm_reviewer_inside_a_running_event_loop(task: Task, server_url: str, tmp_path: Path) -> None:
    task = task.model_copy(update={"id_column": None})
    options = {"base_url": server_url, **OPTIONS}

    async def cell() -> pd.DataFrame:  # what a notebook cell is: synchronous code run by a running loop
        annotator = Annotator(task, mode="llm-only", reviewer="llm", reviewer_options=options, run_dir=tmp_path / "run")
        return annotator.annotate(pd.DataFrame({"text": TEXTS})).frame

    frame = asyncio.run(cell())
    assert frame["label"].tolist() == ["positive", "negative", "positive", "negative"]
    assert frame["label_source"].eq("llm").all()


@pytest.mark.slow
def test_the_python_api_in_a_jupyter_notebook(server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = f"""
import json
import pandas as pd
from autoannotator import Annotator, Task
task = Task.from_yaml({str(EXAMPLE / "task.yaml")!r}).model_copy(update={{"id_column": None}})
annotator = Annotator(task, mode="llm-only", reviewer="llm", reviewer_options={{"base_url": {server_url!r}, **{OPTIONS!r}}},
                      run_dir="run")
result = annotator.annotate(pd.DataFrame({{"text": {TEXTS!r}}}), output="labeled.csv")
print(json.dumps(result.frame["label"].tolist()))
"""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import asyncio; asyncio.get_running_loop()"),
                                               nbformat.v4.new_code_cell(source)])  # fmt: skip
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))  # the kernel's
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    printed = "".join(o.get("text", "") for o in notebook.cells[1].outputs if o.get("output_type") == "stream")
    assert json.loads(printed) == ["positive", "negative", "positive", "negative"]
    assert pd.read_csv(tmp_path / "labeled.csv")["label_source"].eq("llm").all()
