"""The margin and learned rules at one whole-run review budget on the bundled tweets (issue 11, items 2-3).

One seeded command: seed = examples/tweets/seed.csv, input = the first N rows of examples/tweets/tweets.csv with
their gold column as the reviewer; specialists tfidf + lexicon. Writes benchmarks/results/learned_routing.md.

    python benchmarks/learned_routing.py --items 1000 --budget 0.2
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import RESULTS, ROOT, git_commit, machine

from autoannotator import Annotator, Task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=0.2)
    parser.add_argument("--chunk-size", type=int, default=150)
    parser.add_argument("--random-seed", type=int, default=0)
    args = parser.parse_args()
    example = ROOT / "examples" / "tweets"
    task = Task.from_yaml(example / "task.yaml")
    seed = pd.read_csv(example / "seed.csv", dtype=str, keep_default_na=False)
    data = pd.read_csv(example / "tweets.csv", dtype=str, keep_default_na=False).iloc[: args.items]
    rows = []
    for rule in ("margin", "learned"):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            result = Annotator(task, specialists=["tfidf", "lexicon"], reviewer="gold:gold_label", run_dir=Path(run_dir), rule=rule,
                               budget=args.budget, chunk_size=args.chunk_size, random_seed=args.random_seed).annotate(data, seed=seed)  # fmt: skip
        frame = result.frame
        auto = frame["label_source"] == "consensus"
        rows.append((rule, result.summary.review_fraction, (frame["label"] == data["gold_label"]).mean(),
                     (frame.loc[auto, "label"] == data.loc[auto, "gold_label"]).mean(), result.summary.consensus.get("ece"),
                     time.perf_counter() - started))  # fmt: skip
        print(rows[-1], flush=True)
    lines = [
        "# Learned consensus and whole-run budget: bundled tweets", "",
        f"- seed: examples/tweets/seed.csv ({len(seed)} rows); input: first {len(data)} rows of examples/tweets/tweets.csv; reviewer: "
        f"gold (gold_label); specialists tfidf + lexicon; --budget {args.budget}; chunk {args.chunk_size}; random seed {args.random_seed}",
        f"- machine: {machine()} (shared with other jobs: seconds are not comparable across machines); commit {git_commit()}",
        f"- command: `python benchmarks/learned_routing.py --items {args.items} --budget {args.budget}`", "",
        "| rule | realised review share | accuracy | accuracy of auto-accepted labels | ECE (seed, cross-validated) | seconds |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {r} | {s:.1%} | {a:.3f} | {c:.3f} | {'-' if e is None else f'{e:.3f}'} | {t:.0f} |" for r, s, a, c, e, t in rows],
    ]  # fmt: skip
    (RESULTS / "learned_routing.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print((RESULTS / "learned_routing.md").read_text())


if __name__ == "__main__":
    main()
