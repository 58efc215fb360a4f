"""Start and stop llama.cpp's OpenAI-compatible server on an embedded model (tests, benchmarks, offline demos)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autoannotator.errors import AnnotatorError
from autoannotator.llm.embedded import llama_threads
from autoannotator.llm.local_models import gguf_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def llama_server(model: str = "smollm2-135m", *, port: int | None = None, n_ctx: int = 2048, log: Path | None = None) -> Iterator[str]:
    """Run `python -m llama_cpp.server` on 127.0.0.1 and yield its base URL (…/v1); stopped on exit.

    The server computes with `llama_threads()` threads for single tokens and prompt batches (its own default for
    batches is every CPU, which stalls on shared CPUs)."""
    port = port or free_port()
    threads = str(llama_threads())
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path(model)), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(n_ctx), "--model_alias", model,
               "--n_threads", threads, "--n_threads_batch", threads]  # fmt: skip
    sink = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AnnotatorError(f"llama.cpp server exited with status {process.returncode} (is llama-cpp-python[server] installed?)")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AnnotatorError("llama.cpp server did not start within 120 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if log:
            sink.close()
