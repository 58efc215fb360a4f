"""The sklearn specialists' heads against plain logistic regression on the same features (issue 11, item 1).

One seeded command: seed = first N train rows, test = first M test rows of a shared dataset. Compares, on the
same L2-normalized MiniLM embeddings (and the same TF-IDF features): plain LogisticRegression (C=1, no class
weights), the previous head (C=1 for embedding / C=4 for tfidf, class_weight balanced), and the current
heads with C cross-validated on the seed (`C: null`). Writes benchmarks/results/specialist_heads.md.

    python benchmarks/specialist_heads.py --dataset twitter_financial_news_sentiment --seed-rows 2000 --test-rows 2000
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import time

from common import RESULTS, git_commit, load_split, machine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from autoannotator import Task
from autoannotator.specialists import create_specialist
from autoannotator.specialists.linear_head import chosen_C


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="twitter_financial_news_sentiment")
    parser.add_argument("--seed-rows", type=int, default=2000)
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--random-seed", type=int, default=0)
    args = parser.parse_args()
    train, test = load_split(args.dataset, "train").iloc[: args.seed_rows], load_split(args.dataset, "test").iloc[: args.test_rows]
    labels = sorted(set(train["label"]) | set(test["label"]))
    task = Task.from_dict({"name": args.dataset, "labels": labels})
    index = {name: i for i, name in enumerate(task.label_names)}
    y_seed, y_test = train["label"].map(index).to_numpy(), test["label"].map(index).to_numpy()
    rows = []

    def measure(name: str, predict) -> None:  # noqa: ANN001
        started = time.perf_counter()
        pred, note = predict()
        rows.append((name, accuracy_score(y_test, pred), f1_score(y_test, pred, average="macro"), note, time.perf_counter() - started))
        print(rows[-1], flush=True)

    embedding = create_specialist("embedding", task, seed=args.random_seed)
    seed_x, test_x = embedding.embed(train["text"].tolist()), embedding.embed(test["text"].tolist())
    for label, options in [("plain LogisticRegression (C=1)", {}), ("previous head (C=1, balanced)", {"class_weight": "balanced"})]:
        measure(f"embedding: {label}", lambda o=options: (LogisticRegression(C=1.0, max_iter=2000, **o).fit(seed_x, y_seed).predict(test_x), "C=1"))

    def specialist(kind: str, **options):  # noqa: ANN202
        def run():  # noqa: ANN202
            s = create_specialist(kind, task, seed=args.random_seed, **options)
            if kind == "embedding":
                from autoannotator.specialists.linear_head import fit_head, head_proba

                s.head = fit_head(seed_x, y_seed, C=options.get("C"), seed=args.random_seed, class_weight=options.get("class_weight"))
                return head_proba(s.head, test_x, len(labels)).argmax(axis=1), f"C={chosen_C(s.head):g}"
            s.fit(train["text"].tolist(), train["label"].tolist())
            return s.predict_proba(test["text"].tolist()).argmax(axis=1), f"C={chosen_C(s.head):g}"

        return run

    measure("embedding, `C: null` (cross-validated)", specialist("embedding", C=None))
    measure("tfidf: plain LogisticRegression (C=1)", specialist("tfidf", C=1.0))
    measure("tfidf: previous head (C=4, balanced)", specialist("tfidf", C=4.0, class_weight="balanced"))
    measure("tfidf specialist, default `C: null` (cross-validated)", specialist("tfidf"))
    out = RESULTS / "specialist_heads.md"
    lines = [
        f"# Specialist heads: {args.dataset}", "",
        f"- seed = first {len(train)} train rows, test = first {len(test)} test rows; random seed {args.random_seed}; "
        f"encoder: packaged all-MiniLM-L6-v2, L2-normalized; cross-validation: 5 stratified folds, C grid 0.01-1000, log loss",
        f"- machine: {machine()}; commit {git_commit()}",
        f"- command: `python benchmarks/specialist_heads.py --dataset {args.dataset} --seed-rows {args.seed_rows} --test-rows {args.test_rows}`", "",
        "| head | accuracy | macro-F1 | C | seconds (fit+predict, embeddings excluded) |", "|---|---:|---:|---|---:|",
        *[f"| {n} | {a:.3f} | {f:.3f} | {c} | {s:.1f} |" for n, a, f, c, s in rows],
    ]  # fmt: skip
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out.read_text())


if __name__ == "__main__":
    main()
