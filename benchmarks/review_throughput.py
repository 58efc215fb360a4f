"""Review throughput: the embedded reviewer's seconds per item, and items/s at 1, 8 and 32 requests in flight
against llama.cpp's local server.

    python benchmarks/review_throughput.py [--items 48] [--model smollm2-135m] [--embedded-items 100]

Embedded reviewer (Gemma 3 270M in-process, as `--reviewer llm` without a server): a seeded sample of the
bundled tweets scored with the bundled task and seed's few-shot examples, under llama.cpp thread settings
taken in turns (blocks of 10 items), so each sees the same load from other processes on the machine.
Server: each setting labels the same tweets (tweet_sentiment_extraction test) in llm-only mode with a
fresh run store (so no cache hits), zero-shot, JSON answers constrained by the server's grammar.
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import RESULTS, ROOT, git_commit, load_split, machine

from autoannotator import Annotator, Task
from autoannotator.llm.embedded import llama_threads
from autoannotator.llm.server import free_port, llama_server
from autoannotator.reviewers.local_llm import LocalLLMReviewer
from autoannotator.task import Example

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fault_server import serve  # noqa: E402  (a local OpenAI-compatible server with a fixed delay)


EXAMPLE = ROOT / "examples" / "tweets"


def embedded_review(items: int, seed: int) -> list[str]:
    """The embedded reviewer's seconds per item under each thread setting, with and without the few-shot prefix kept.

    Returns the markdown lines of the section; every setting scores the same `items` tweets (sampled with `seed`)."""
    task = Task.from_yaml(EXAMPLE / "task.yaml")
    seed_frame = pd.read_csv(EXAMPLE / "seed.csv", dtype=str, keep_default_na=False)
    texts = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str, keep_default_na=False).sample(items, random_state=seed).text.tolist()
    examples = [Example(text=t, label=y) for t, y in zip(seed_frame.text, seed_frame.label)]
    every_cpu, default = os.cpu_count() or 1, llama_threads()
    settings = {  # name: (threads, keep the prefix)
        f"{every_cpu} threads (every CPU: before), prefix kept": (every_cpu, True),
        f"{default} thread{'s' * (default > 1)} (`llama_threads()`: now), prefix kept": (default, True),
        f"{default} thread{'s' * (default > 1)}, prefix evaluated again for every item": (default, False),
    }
    reviewers = {name: LocalLLMReviewer(task, examples=examples, threads=threads) for name, (threads, _) in settings.items()}
    for reviewer in reviewers.values():
        reviewer.calibration  # noqa: B018 - once per run (three content-free inputs), not part of the per-item time
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    evaluated: dict[str, list[int]] = {name: [] for name in settings}
    prompts: dict[str, list[int]] = {name: [] for name in settings}
    answers: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
    load_before = os.getloadavg()
    for block, start in enumerate(range(0, items, 10)):
        order = list(settings)[block % len(settings) :] + list(settings)[: block % len(settings)]
        for name in order:
            reviewer, keep = reviewers[name], settings[name][1]
            for text in texts[start : start + 10]:
                if not keep:
                    reviewer.llm.reset()
                before, started = reviewer.tokens_evaluated, time.perf_counter()
                answers[name].append(reviewer.score(text))
                seconds[name].append(time.perf_counter() - started)
                evaluated[name].append(reviewer.tokens_evaluated - before)
                prompts[name].append(reviewer.last_prompt_tokens)
    load_after = os.getloadavg()
    reference = answers[list(settings)[1]]
    rows = []
    for name in settings:
        same = np.mean([max(a, key=a.get) == max(r, key=r.get) for a, r in zip(answers[name], reference)])
        gap = max(abs(a[k] - r[k]) for a, r in zip(answers[name], reference) for k in a)
        s = np.array(seconds[name])
        rows.append(f"| {name} | {s.mean():.3f} | {np.median(s):.3f} | {np.percentile(s, 90):.3f} | "
                    f"{np.mean(prompts[name]):.0f} | {np.mean(evaluated[name]):.0f} | {same:.0%} | {gap:.1e} |")  # fmt: skip
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return [
        "## Embedded reviewer (Gemma 3 270M in-process, `--reviewer llm` without a server)",
        "",
        f"- {items} tweets of examples/tweets/tweets.csv (`sample({items}, random_state={seed})`), task and few-shot examples from",
        f"  examples/tweets (task.yaml, seed.csv: {len(reviewers[list(settings)[1]].examples)} shots), contextual calibration computed once before timing",
        "- seconds per item: `LocalLLMReviewer.score` (tokenize, evaluate, read the label probabilities), settings taken in",
        "  turns in blocks of 10 items; tokens: the prompt's length and what went through the model (`tokens_evaluated`)",
        f"- load average (1, 5, 15 min) before: {', '.join(f'{v:.1f}' for v in load_before)}; after: "
        f"{', '.join(f'{v:.1f}' for v in load_after)} (`uptime` after: {uptime})",
        "",
        "Settings within this table saw the same load; figures from another time on shared CPUs are not comparable.",
        "",
        "| llama.cpp threads, prefix | s/item mean | median | p90 | prompt tokens | tokens evaluated | same label as now | max prob. gap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=48)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--in-flight", default="1,8,32")
    parser.add_argument("--simulated-latency", type=float, default=0.25)
    parser.add_argument("--embedded-items", type=int, default=100)
    parser.add_argument("--embedded-seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "review_throughput.md")
    args = parser.parse_args()

    embedded = embedded_review(args.embedded_items, args.embedded_seed)
    print("\n".join(embedded), flush=True)

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
        "# Review throughput: the embedded reviewer and the local llama.cpp server",
        "",
        f"- machine: {machine()}, shared with other processes (load averages below); commit {git_commit()}",
        f"- command: `python benchmarks/review_throughput.py --items {args.items} --model {args.model} "
        f"--embedded-items {args.embedded_items} --embedded-seed {args.embedded_seed}`",
        "",
        *embedded,
        "## llama.cpp server",
        "",
        f"- {args.items} tweets of tweet_sentiment_extraction test, llm-only, zero-shot, JSON answers (grammar), temperature 0",
        f"- model: {args.model} (GGUF) served by `python -m llama_cpp.server` on 127.0.0.1 with {llama_threads()} thread(s) "
        "(`llama_server`: `llama_threads()`)",
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
