"""Refinement on twitter_financial_news_sentiment: specialists cold-started from 500 labeled rows, gold
reviewer, β = 500; accuracy of every specialist version on the test split, final annotation accuracy
with and without refinement, and fine-tuning time per 1,000 items.

    python benchmarks/refinement.py [--items 4000] [--beta 500] [--specialists tfidf,embedding,hf,lexicon]
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, git_commit, load_split, machine

from autoannotator import Annotator, Task, evaluate_frame
from autoannotator.specialists import load_specialist
from autoannotator.store import STORE_FILE, RunStore

TASK = {
    "name": "financial-news-sentiment",
    "instruction": "Is this finance tweet bearish, bullish or neutral for the stock or market it is about?",
    "labels": [
        {"name": "bearish", "description": "bad news or a negative outlook", "aliases": ["negative"]},
        {"name": "bullish", "description": "good news or a positive outlook", "aliases": ["positive"]},
        {"name": "neutral", "description": "neither"},
    ],
}
SPECIALIST_OPTIONS = {"hf": {"max_length": 64, "epochs": 3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4000, help="train rows to annotate (after the seed rows)")
    parser.add_argument("--seed-rows", type=int, default=500)
    parser.add_argument("--beta", type=int, default=500)
    parser.add_argument("--specialists", default="tfidf,embedding,hf,lexicon")
    parser.add_argument("--output", type=Path, default=RESULTS / "refinement.md")
    args = parser.parse_args()

    task = Task.from_dict(TASK)
    train = load_split("twitter_financial_news_sentiment", "train").sample(frac=1.0, random_state=0).reset_index(drop=True)
    test = load_split("twitter_financial_news_sentiment", "test")
    seed, data = train.iloc[: args.seed_rows], train.iloc[args.seed_rows : args.seed_rows + args.items].reset_index(drop=True)
    data = data.rename(columns={"label": "gold"})
    specs = [{"kind": k, "options": SPECIALIST_OPTIONS.get(k, {})} for k in args.specialists.split(",")]

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, refine in (("without refinement", None), ("with refinement", {"beta": args.beta})):
            run_dir = Path(tmp) / name.replace(" ", "-")
            annotator = Annotator(task, specialists=specs, reviewer="gold:gold", run_dir=run_dir, refine=refine)
            started = time.perf_counter()
            result = annotator.annotate(data, seed=seed)
            seconds = time.perf_counter() - started
            results[name] = (evaluate_frame(result.frame, "gold", label_order=task.label_names), result.summary, seconds)
            if refine:
                store = RunStore(run_dir / STORE_FILE)
                versions = store.specialist_versions()
                rounds = store.rounds()
                store.close()
                version_rows = []
                for v in versions:
                    if v["name"] == "lexicon":
                        continue
                    specialist = load_specialist(run_dir / v["path"], task)
                    accuracy = float(np.mean(np.array(task.label_names)[specialist.predict_proba(test.text.tolist()).argmax(axis=1)] == test.label))
                    gate = "-" if v["gate_after"] is None else f"{v['gate_before']:.3f} → {v['gate_after']:.3f}"
                    version_rows.append(f"| {v['name']} | v{v['version']} | {v['round'] or 'seed'} | {v['status']} | {gate} | {accuracy:.3f} |")

    lines = [
        "# Refinement: twitter_financial_news_sentiment",
        "",
        f"- {args.items} train rows annotated (shuffled, seed 0) after {args.seed_rows} seed rows that cold-start the specialists;"
        f" gold reviewer; β = {args.beta}; specialists {args.specialists} ({SPECIALIST_OPTIONS}); test split {len(test)} rows",
        f"- defaults: replay 0.5, consensus replay 0.25, gate 20% of each pool; random seed {result.summary.random_seed} (the run's"
        " `--random-seed`: the same command reproduces these figures exactly on CPU);"
        f" machine: {machine()}; commit {git_commit()}",
        f"- command: `python benchmarks/refinement.py --items {args.items} --beta {args.beta} --specialists {args.specialists}`",
        "",
        "## Final annotation",
        "",
        "| run | accuracy | macro-F1 | reviewed by gold | consensus accuracy | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, (evaluation, summary, seconds) in results.items():
        lines.append(f"| {name} | {evaluation.accuracy:.4f} | {evaluation.macro_f1:.4f} | {summary.review_fraction:.1%} | "
                     f"{evaluation.route_accuracy.get('consensus', float('nan')):.4f} | {seconds:.0f} |")  # fmt: skip
    lines += ["", "## Every specialist version on the test split", "",
              "| specialist | version | round | status | gate accuracy before → after | test accuracy |", "|---|---|---|---|---|---:|",
              *version_rows, "", "## Fine-tuning time per 1,000 training items", "",
              "| round | pool | specialist | trained on | seconds | seconds per 1,000 items |", "|---:|---:|---|---:|---:|---:|"]  # fmt: skip
    for r in rounds:
        for v in r["details"]:
            lines.append(f"| {r['id']} | {r['pool_size']} | {v['name']} | {v['train_size']} | {v['seconds']:.1f} | "
                         f"{1000 * v['seconds'] / max(v['train_size'], 1):.1f} |")  # fmt: skip
    report = "\n".join(lines) + "\n"
    print(report)
    args.output.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
