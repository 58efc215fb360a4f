"""Texts/s of each specialist alone and of the whole annotate run with the same models, and their ratio.

    python benchmarks/throughput.py [--dataset tweet_sentiment_extraction] [--seed-rows 2000] [--specialists tfidf,embedding,lexicon]

Trains the specialists once on `--seed-rows` rows of the train split, then on the test split times
(1) each specialist's predict_proba alone on all texts and (2) `Annotator.annotate` with those same
trained models (reviewer none): chunking, consensus, the SQLite store and the output file included.
Overhead = pipeline time / sum of the models' own times - 1 (target: under 10%).
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import tempfile
import time
from pathlib import Path

from common import RESULTS, git_commit, load_split, machine

from autoannotator import Annotator, Task
from autoannotator.specialists import create_specialist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tweet_sentiment_extraction")
    parser.add_argument("--seed-rows", type=int, default=2000)
    parser.add_argument("--specialists", default="tfidf,embedding,lexicon")
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--executor", default="local", help="local, or ray (compared against local in the same run)")
    parser.add_argument("--ray-actors", type=int, default=2)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    train, test = load_split(args.dataset, "train"), load_split(args.dataset, "test")
    labels = sorted(set(train["label"]))
    task = Task.from_dict({"name": args.dataset, "labels": labels})
    seed = train.sample(n=args.seed_rows, random_state=0)
    texts = test["text"].tolist()

    pool, model_seconds = [], {}
    for kind in args.specialists.split(","):
        specialist = create_specialist(kind, task).fit(seed["text"].tolist(), seed["label"].tolist())
        specialist.predict_proba(texts[:64])  # warm-up: lazy model load, first-call allocations
        t0 = time.perf_counter()
        specialist.predict_proba(texts)
        model_seconds[kind] = time.perf_counter() - t0
        pool.append(specialist)

    def pipeline(executor: object, chunk_size: int) -> tuple[float, object]:
        with tempfile.TemporaryDirectory() as tmp:
            annotator = Annotator(task, specialists=pool, reviewer="none", run_dir=Path(tmp) / "run", chunk_size=chunk_size, executor=executor)
            t0 = time.perf_counter()
            result = annotator.annotate(test[["text"]], output=Path(tmp) / "out.parquet")
            return time.perf_counter() - t0, result

    pipeline_seconds, result = pipeline("local", args.chunk_size)
    ray_lines = []
    if args.executor == "ray":
        from autoannotator.executors.ray import RayExecutor

        executor = RayExecutor(num_actors=args.ray_actors, batch_size=256)
        ray_seconds, _ = pipeline(executor, 4096)  # one chunk: actors start once
        ray_lines = [f"| annotate pipeline, ray executor ({args.ray_actors} actors, local cluster) | {ray_seconds:.2f} | {len(texts) / ray_seconds:,.0f} |",
                     "", f"Ray / local pipeline time: {ray_seconds / pipeline_seconds:.2f} (actor start-up and model loading included)."]  # fmt: skip

    n = len(texts)
    models_total = sum(model_seconds.values())
    overhead = pipeline_seconds / models_total - 1
    lines = [
        "# Throughput: specialists alone vs the annotate pipeline",
        "",
        f"- dataset: {args.dataset}, split: test ({n} texts), specialists trained on {args.seed_rows} train rows (seed 0)",
        f"- reviewer: none; chunk size {args.chunk_size}; machine: {machine()}; commit {git_commit()}",
        f"- command: `python benchmarks/throughput.py --specialists {args.specialists} --executor {args.executor}`",
        "",
        "| what | seconds | texts/s |",
        "|---|---:|---:|",
        *[f"| {kind} alone | {s:.2f} | {n / s:,.0f} |" for kind, s in model_seconds.items()],
        f"| all models, summed | {models_total:.2f} | {n / models_total:,.0f} |",
        f"| annotate pipeline (same models) | {pipeline_seconds:.2f} | {n / pipeline_seconds:,.0f} |",
        *ray_lines,
        "",
        f"Pipeline / models ratio: {pipeline_seconds / models_total:.3f} (overhead {overhead:+.1%}; target under 10%).",
        f"Where the pipeline's time went (s): {result.summary.seconds}",
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    output = args.output or RESULTS / ("throughput.md" if args.executor == "local" else f"throughput_{args.executor}.md")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
