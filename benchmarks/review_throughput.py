"""Review throughput (items/s) at 1, 8 and 32 requests in flight against llama.cpp's local server.

    python benchmarks/review_throughput.py [--items 48] [--model smollm2-135m]

Each setting labels the same tweets (tweet_sentiment_extraction test) in llm-only mode with a fresh
run store (so no cache hits), zero-shot, JSON answers constrained by the server's grammar.
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, git_commit, load_split, machine

from autoannotator import Annotator, Task
from autoannotator.llm.server import free_port, llama_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fault_server import serve  # noqa: E402  (a local OpenAI-compatible server with a fixed delay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--in-flight", default="1,8,32")
    parser.add_argument("--simulated-latency", type=float, default=0.25)
    parser.add_argument("--output", type=Path, default=RESULTS / "review_throughput.md")
    args = parser.parse_args()

    test = load_split("tweet_sentiment_extraction", "test").iloc[: args.items]
    task = Task.from_dict({"name": "tweet-sentiment", "instruction": "Classify the sentiment of the tweet.",
                           "labels": ["negative", "neutral", "positive"]})  # fmt: skip
    def measure(url: str, model: str, in_flight: int, **extra: object) -> str:
        options = {"base_url": url, "model": model, "structured": "json_object", "max_in_flight": in_flight, **extra}
        with tempfile.TemporaryDirectory() as tmp:
            annotator = Annotator(task, mode="llm-only", reviewer="llm", reviewer_options=options, run_dir=Path(tmp) / "r")
            started = time.perf_counter()
            result = annotator.annotate(test[["text"]])
            seconds = time.perf_counter() - started
        usage = result.summary.llm[model]
        accuracy = (result.frame["label"] == test["label"]).mean()
        return (f"| {in_flight} | {seconds:.1f} | {len(test) / seconds:.2f} | {int(usage['calls'])} | "
                f"{int(usage['prompt_tokens'] + usage['completion_tokens']):,} | {accuracy:.3f} |")  # fmt: skip

    settings = [int(v) for v in args.in_flight.split(",")]
    with llama_server(args.model) as url:
        rows = [measure(url, args.model, n) for n in settings]
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        simulated = serve(port, Path(tmp) / "answered.jsonl", delay=args.simulated_latency)
        sim_rows = [measure(f"http://127.0.0.1:{port}/v1", "simulated-api", n, logprobs=False) for n in settings]
        simulated.shutdown()
    header = ["| requests in flight | seconds | items/s | paid calls | tokens | accuracy |", "|---:|---:|---:|---:|---:|---:|"]
    report = "\n".join([
        "# Review throughput against the local llama.cpp server",
        "",
        f"- {args.items} tweets of tweet_sentiment_extraction test, llm-only, zero-shot, JSON answers (grammar), temperature 0",
        f"- model: {args.model} (GGUF) served by `python -m llama_cpp.server` on 127.0.0.1; machine: {machine()}; commit {git_commit()}",
        f"- command: `python benchmarks/review_throughput.py --items {args.items} --model {args.model}`",
        "",
        "## llama.cpp server",
        "",
        *header,
        *rows,
        "",
        "llama-cpp-python's server runs one completion at a time, so more requests in flight only hide the HTTP",
        "round trips there.",
        "",
        f"## A server that answers every request after {args.simulated_latency * 1000:.0f} ms (a hosted API's latency)",
        "",
        "`tests/fault_server.py` with a fixed delay, keyword answers (accuracy is not meaningful here): what the",
        "client's concurrency buys against a server that handles requests in parallel (hosted APIs, vLLM).",
        "",
        *header,
        *sim_rows,
    ]) + "\n"  # fmt: skip
    print(report)
    args.output.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
