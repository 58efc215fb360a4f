"""Fine-tuned specialists against the frozen-encoder `embedding` specialist (issue 11, item 1): `hf` with the
previous fine-tuning defaults and with the current ones (early stopping), and SetFit (Tunstall et al. 2022)
through the `setfit` library: the `embedding` specialist whose encoder is first fine-tuned contrastively on pairs
of seed texts (a pair budget of 200 steps x 16 pairs). SetFit is measured here only: it did not earn a
specialist kind (results/specialists.md).

One seeded command per (dataset, seed size): seed = first N train rows of a shared dataset, test = first M test
rows; every method trains on the seed and predicts the test rows. Each measured row is kept in
benchmarks/results/specialists.json (keyed by dataset, seed rows and method, so runs can be split and resumed) and
benchmarks/results/specialists.md is rendered from all of them.

    OMP_NUM_THREADS=1 python benchmarks/specialists.py --dataset trec6 --seed-rows 500 --test-rows 2000
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import json
import os
import time

from common import RESULTS, git_commit, load_split, machine
from sklearn.metrics import accuracy_score, f1_score

from autoannotator import Task
from autoannotator.specialists import create_specialist

METHODS = {
    "embedding": ("embedding", {}),
    "hf-previous": ("hf", {"epochs": 3, "validation_fraction": 0.0}),  # the defaults before early stopping
    "hf": ("hf", {}),
    "setfit": ("embedding", {}),  # its encoder fine-tuned by `setfit_fit` first
}
SETFIT = {"max_steps": 200, "batch_size": 16, "body_learning_rate": 2e-5}
JSON = RESULTS / "specialists.json"


def measure(dataset: str, seed_rows: int, test_rows: int, method: str, random_seed: int) -> dict:
    """Train `method` on the seed and score the test rows: accuracy, macro-F1, seconds to train and to predict."""
    train, test = load_split(dataset, "train").iloc[:seed_rows], load_split(dataset, "test").iloc[:test_rows]
    task = Task.from_dict({"name": dataset, "labels": sorted(set(train["label"]) | set(test["label"]))})
    kind, options = METHODS[method]
    load = os.getloadavg()[0]
    specialist = create_specialist(kind, task, seed=random_seed, **options)
    started = time.perf_counter()
    if method == "setfit":
        setfit_fit(specialist, train["text"].tolist(), specialist.label_indices(train["label"].tolist()), random_seed)
    specialist.fit(train["text"].tolist(), train["label"].tolist())
    trained = time.perf_counter()
    pred = specialist.predict_proba(test["text"].tolist()).argmax(axis=1)
    done = time.perf_counter()
    gold = test["label"].map({name: i for i, name in enumerate(task.label_names)}).to_numpy()
    log = getattr(specialist, "training_log_", None)
    return {
        "dataset": dataset, "seed_rows": len(train), "test_rows": len(test), "method": method, "kind": kind,
        "options": options, "random_seed": random_seed, "accuracy": accuracy_score(gold, pred),
        "macro_f1": f1_score(gold, pred, average="macro"), "train_s": trained - started, "predict_s": done - trained,
        "epochs": None if log is None else f"{log['best_epoch']} of {log['epochs_run']} run",
        "load_average": load, "torch_threads": _threads(), "machine": machine(), "commit": git_commit(),
    }  # fmt: skip


def setfit_fit(specialist, texts: list[str], targets, seed: int) -> None:  # noqa: ANN001
    """Fine-tune the `embedding` specialist's encoder in place with setfit's contrastive phase (cosine-similarity
    loss on pairs: same label 1, different labels 0; SETFIT's pair budget)."""
    import tempfile

    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(output_dir=scratch, seed=seed, report_to="none", save_strategy="no", show_progress_bar=False, **SETFIT)
        dataset = Dataset.from_dict({"text": texts, "label": targets.tolist()})
        Trainer(model=SetFitModel(model_body=specialist.encoder), args=args, train_dataset=dataset).train_embeddings(texts, targets.tolist(), args=args)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def render(rows: list[dict]) -> str:
    """The results table, one row per (dataset, seed rows, method), with the stamp of what produced it."""
    stamps = sorted({(r["machine"], r["commit"], r["torch_threads"]) for r in rows})
    lines = [
        "# Specialists: fine-tuned against frozen embeddings", "",
        "- data: shared datasets; seed = first N train rows, test = first 2,000 test rows (trec6 has 500); "
        "random seed 0; models: packaged all-MiniLM-L6-v2 for every method",
        "- methods: `embedding` = frozen encoder + logistic regression (C = 1); `hf-previous` = MiniLM fine-tuned end "
        "to end with the previous defaults (lr 1e-4, 3 epochs, batch 16, no early stopping); `hf` = the current "
        "defaults (lr 1e-4, at most 5 epochs, early stopping on a seeded 10% slice of the seed, patience 1, best "
        "epoch kept); `setfit` = contrastive fine-tuning through the setfit library (200 steps x 16 pairs, body "
        "lr 2e-5) then the `embedding` head. Both hf rows use length-grouped training batches.",
        *[f"- machine: {m}; torch threads {t}; commit {c}" for m, c, t in stamps],
        "- seconds were measured while 4 other helpers' jobs shared the 2 cores (load average at the start of each "
        "row in the last column): compare them within a row group, not as absolute speeds",
        "- command: `OMP_NUM_THREADS=1 python benchmarks/specialists.py --dataset D --seed-rows N --test-rows 2000 "
        "[--methods ...]`", "",
        "| dataset | seed rows | method | accuracy | macro-F1 | train s | predict s | epoch kept | load |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    order = list(METHODS)
    for r in sorted(rows, key=lambda r: (r["dataset"], r["seed_rows"], order.index(r["method"]))):
        lines.append(
            f"| {r['dataset']} | {r['seed_rows']} | {r['method']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
            f"{r['train_s']:.0f} | {r['predict_s']:.0f} | {r['epochs'] or ''} | {r['load_average']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="twitter_financial_news_sentiment")
    parser.add_argument("--seed-rows", type=int, default=500)
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    args = parser.parse_args()
    for method in args.methods.split(","):
        if method not in METHODS:
            raise SystemExit(f"unknown method '{method}' (known: {', '.join(METHODS)})")
        row = measure(args.dataset, args.seed_rows, args.test_rows, method, args.random_seed)
        print(json.dumps(row), flush=True)
        rows = json.loads(JSON.read_text()) if JSON.is_file() else []  # re-read: another run may have added rows
        key = (row["dataset"], row["seed_rows"], row["method"])
        rows = [r for r in rows if (r["dataset"], r["seed_rows"], r["method"]) != key] + [row]
        JSON.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        (RESULTS / "specialists.md").write_text(render(rows), encoding="utf-8")


if __name__ == "__main__":
    main()
