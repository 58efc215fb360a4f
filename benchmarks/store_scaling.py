"""Store time per chunk over a long run: does the run store's cost grow with the run, or stay with the work?

A run's store side, without models: each chunk of synthetic items is saved (a share of them hard),
the hard ones answered by a gold reviewer, refinement's trigger checked after the chunk, and every
β reviewed items a round's store side runs (pool, gate, replay sample, commit; no training). A review
page's look-ups (`reviews(row)`, a lease) run too. The seconds of those store calls are recorded per
chunk; flat means the last chunks cost what the first ones did.

    python -m benchmarks.store_scaling --items 200000 --chunk-size 512
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, git_commit, machine  # noqa: E402

from autoannotator.refine import RefineSettings, Refiner  # noqa: E402
from autoannotator.store import ItemRecord, RunStore  # noqa: E402

LABELS = ["negative", "neutral", "positive"]
VOTERS = ["tfidf", "embedding", "lexicon"]


def synthetic_chunk(rows: range, rng: np.random.Generator, hard_share: float) -> list[ItemRecord]:
    """Items as the pipeline stores them: votes of three specialists, hard ones pending review."""
    records = []
    for row in rows:
        hard = rng.random() < hard_share
        agreed = not hard and rng.random() < 0.7
        label = LABELS[int(rng.integers(3))]
        votes = {v: {"label": label if agreed or i == 0 else LABELS[int(rng.integers(3))], "p": round(float(rng.uniform(0.4, 1.0)), 4)}
                 for i, v in enumerate(VOTERS)}  # fmt: skip
        records.append(ItemRecord(
            row=row, item_id=f"id{row}", text_hash=f"{row:032x}", text=f"synthetic text number {row} " * 4,
            state="pending_review" if hard else "done", label=None if hard else label,
            label_source="unresolved" if hard else "consensus", consensus_label=label,
            uncertainty=0.0 if agreed else 1 / 3, votes=votes, unanimous=agreed,
        ))  # fmt: skip
    return records


def run(n_items: int, chunk_size: int, beta: int, hard_share: float, seed: int, folder: Path) -> dict:
    rng = np.random.default_rng(seed)
    store = RunStore.open(folder, {"benchmark": "store_scaling"})
    store.start_session()
    refiner = Refiner(RefineSettings(beta=beta, seed=seed), folder)
    per_chunk, per_round = [], []
    for start in range(0, n_items, chunk_size):
        records = synthetic_chunk(range(start, min(start + chunk_size, n_items)), rng, hard_share)
        t0 = time.perf_counter()
        store.save_items(records)
        pending = store.pending_review([r.row for r in records])
        store.save_reviews((r.row, "gold", r.consensus_label, None, {}) for r in pending)
        for row in rng.integers(0, start + len(records), size=5):  # the review page's look-ups
            store.reviews(int(row))
        store.lease_next("bench", 60.0)
        due = refiner.due(store)
        per_chunk.append(time.perf_counter() - t0)
        while due:
            t1 = time.perf_counter()
            refiner.run_round(store, {}, None)  # the round's store side: no specialist to train
            per_round.append(time.perf_counter() - t1)
            due = refiner.due(store)
    store.close()
    seconds = np.array(per_chunk)
    tenth = max(1, len(seconds) // 10)
    return {"chunks": len(seconds), "rounds": len(per_round), "total_s": round(float(seconds.sum()), 2),
            "first_tenth_ms": round(1000 * float(seconds[:tenth].mean()), 2),
            "last_tenth_ms": round(1000 * float(seconds[-tenth:].mean()), 2),
            "median_ms": round(1000 * float(np.median(seconds)), 2),
            "per_chunk_ms": [round(1000 * s, 2) for s in seconds], "per_round_ms": [round(1000 * s, 2) for s in per_round]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--beta", type=int, default=2000)
    parser.add_argument("--hard-share", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = run(args.items, args.chunk_size, args.beta, args.hard_share, args.seed, Path(folder))
    stamp = {"items": args.items, "chunk_size": args.chunk_size, "beta": args.beta, "hard_share": args.hard_share,
             "seed": args.seed, "machine": machine(), "commit": git_commit(),
             "command": f"python -m benchmarks.store_scaling --items {args.items} --chunk-size {args.chunk_size}"}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "store_scaling.json").write_text(json.dumps(stamp | result, indent=1), encoding="utf-8")
    ratio = result["last_tenth_ms"] / result["first_tenth_ms"]
    lines = [
        "# Run store time per chunk over a long run",
        "",
        f"- {args.items:,} synthetic items (3 voters, {args.hard_share:.0%} hard, answered by a gold reviewer), chunk size "
        f"{args.chunk_size}, β = {args.beta} ({result['rounds']} rounds' store side, no training), seed {args.seed}",
        f"- machine: {stamp['machine']}; commit {stamp['commit']}",
        f"- command: `{stamp['command']}`; per-chunk seconds in store_scaling.json",
        "- per chunk: save the chunk, read its hard items, save their answers, 5 `reviews(row)` look-ups and a lease,",
        "  refinement's trigger; a round's store side (pool, gate, every earlier reviewed item for the refit kinds, the",
        "  unanimous sample, commit) is timed apart: its work grows with the reviewed items it trains on, not with the run",
        "",
        "| chunks | first tenth, ms/chunk | last tenth, ms/chunk | median ms/chunk | last / first | total s |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {result['chunks']} | {result['first_tenth_ms']} | {result['last_tenth_ms']} | {result['median_ms']} | {ratio:.2f} | {result['total_s']} |",
    ]  # fmt: skip
    rounds_ms = result["per_round_ms"]
    if rounds_ms:
        lines += ["", f"Rounds' store side, ms: first {rounds_ms[0]}, last {rounds_ms[-1]} ({len(rounds_ms)} rounds)."]
    (RESULTS / "store_scaling.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
