"""A real LLM reviewer, replayed: GPT-4o's recorded answers on pac_stance through the product's OpenAI client (issue 20).

One seeded command; every figure in benchmarks/results/real_llm.md comes from it:

    python benchmarks/real_llm.py --random-seed 0

Protocol: ../shared/data/pac_stance/stance.csv (2,299 global-warming stance sentences, gold `label`, GPT-4o's
recorded `gpt4o_label` and `gpt4o_confidence`), shuffled with numpy's default_rng(random seed); the first 600
rows are the seed file (text, label), the other 1,699 the input (text, gold column `gold`); task: agrees /
disagrees / neutral (written to the work dir as task.yaml). Every configuration runs end to end through the
public `Annotator` API (what `autoannotator annotate` runs), each in a fresh run directory, with `--specialists
tfidf,embedding --rule learned`:

- no review (`--budget 0`, no reviewer);
- gold reviewer (`--reviewer gold:gold`) at each budget;
- GPT-4o as `--reviewer llm` (the real client path: `llm.client.ChatClient` over HTTP to a local replay server,
  benchmarks/replay_server.py, started and stopped here on 127.0.0.1) with `--review-mode override`, and with
  `--review-mode combine` (the default for an LLM; its probe: the default 100 seed items), at each budget;
- GPT-4o alone: the recorded labels' accuracy on the input, computed directly, and through `--mode llm-only`
  (every item asked through the server; the two must agree, a check of the replay);
- GPT-4o as an `llm` voter in the pool (tfidf, embedding, gpt-4o), gold reviewer, at `--voter-budgets`.

The replay server answers with GPT-4o's recorded label for the item whose text the request holds; when the client
asks for logprobs it sends a distribution built from the recorded confidence (`--no-confidence`: all mass on the
label). An item it cannot find gets an HTTP 500 (counted and printed, never a default label).

Trained specialists are not shared across configurations: a ready Specialist instance is used "as it is" by
`Annotator`, and the learned rule then fits its aggregator on in-sample seed predictions (issue 20's defect 4), so
every run trains and cross-fits its own pool exactly as the command line does.
"""

from __future__ import annotations

import stdlib_first  # noqa: F401  (first: keeps benchmarks/math.py from shadowing the standard library)

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import datetime
import json
import math
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import DATA, RESULTS, ROOT, git_commit, machine
from replay_server import AnswerBook, ReplayServer

DATASET = "pac_stance"
LABELS = ("agrees", "disagrees", "neutral")
BUDGETS = (0.1, 0.2, 0.3, 0.5)
SEED_ROWS = 600
MODEL = "gpt-4o"
COMBINED_SOURCE = "llm+consensus"  # the output's label_source where combine kept another label than the LLM's answer
WORK = ROOT / "benchmarks" / ".cache" / "real_llm"
TASK_YAML = """\
# pac_stance (benchmarks/real_llm.py): the stance a sentence takes on global warming (GWSD, via the PAC-labels release).
name: pac-stance
instruction: >-
  Classify the stance the sentence takes toward the claim that climate change is a serious concern:
  agrees, disagrees, or neutral (neither, or unrelated).
text_column: text
id_column: id
labels:
  - name: agrees
    description: The sentence supports the claim that climate change is real and a serious concern.
  - name: disagrees
    description: The sentence denies or doubts that climate change is real or a serious concern.
  - name: neutral
    description: The sentence takes neither side, or is not about the claim.
"""
MAX_LINE_FAILURES = 5


# --------------------------------------------------------------------------- data


def load_stance(path: Path, random_seed: int, seed_rows: int, limit: int | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(all rows, seed rows, input rows) of stance.csv shuffled by default_rng(random_seed); the input cut to `limit` rows."""
    if not path.is_file():
        raise SystemExit(f"{path} not found: set AUTOANNOTATOR_DATA to the folder holding the shared datasets")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"id", "text", "label", "gpt4o_label", "gpt4o_confidence"} - set(frame.columns)
    if missing:
        raise SystemExit(f"{path}: missing columns {sorted(missing)}")
    order = np.random.default_rng(random_seed).permutation(len(frame))
    shuffled = frame.iloc[order].reset_index(drop=True)
    seed = shuffled.iloc[:seed_rows].reset_index(drop=True)
    rest = shuffled.iloc[seed_rows:].reset_index(drop=True)
    if limit is not None:
        rest = rest.iloc[:limit].reset_index(drop=True)
    return frame, seed, rest


def answer_book(frame: pd.DataFrame) -> AnswerBook:
    """GPT-4o's recorded answer by text (every text of the file: probe items are seed items)."""
    rows = [(t, y, float(c) if c else None) for t, y, c in zip(frame["text"], frame["gpt4o_label"], frame["gpt4o_confidence"])]
    return AnswerBook.from_rows(rows)


def write_inputs(work: Path, seed: pd.DataFrame, rest: pd.DataFrame) -> dict[str, Path]:
    """task.yaml, seed.csv (id, text, label) and input.csv (id, text, gold) in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {"task": work / "task.yaml", "seed": work / "seed.csv", "input": work / "input.csv"}
    paths["task"].write_text(TASK_YAML, encoding="utf-8")
    seed[["id", "text", "label"]].to_csv(paths["seed"], index=False)
    rest[["id", "text", "label"]].rename(columns={"label": "gold"}).to_csv(paths["input"], index=False)
    return paths


# --------------------------------------------------------------------------- runs


def pool(specialists: list[str], voter_url: str | None = None, use_logprobs: bool = True) -> list[Any]:
    """The pool's specialist choices; with `voter_url`, GPT-4o as an `llm` voter named gpt-4o at that server."""
    chosen: list[Any] = list(specialists)
    if voter_url is not None:
        chosen.append({"kind": "llm", "name": MODEL, "options": {"model": MODEL, "base_url": voter_url, "structured": "json_schema",
                                                                 "logprobs": use_logprobs}})  # fmt: skip
    return chosen


def llm_options(base_url: str) -> dict[str, Any]:
    """The LLM reviewer's options: GPT-4o at the replay server, everything else the product's defaults."""
    return {"base_url": base_url, "model": MODEL}


def predicted_accuracy(summary: Any) -> float | None:
    """The run's own prediction of its output's accuracy with this reviewer (issue 20's Build item 3), after the run
    (`reviewer['expected_accuracy']`: its own items at the consensus's posterior and the probe's r(U)); None at
    commits that do not predict it yet."""
    value = (getattr(summary, "reviewer", None) or {}).get("expected_accuracy")
    return float(value) if isinstance(value, (int, float)) else None


def predicted_before(summary: Any) -> float | None:
    """The prediction made from the probe before any review was paid (`reviewer['worth']['chosen']`: the seed's
    out-of-fold predictions and the probe); None where the summary has none."""
    chosen = ((getattr(summary, "reviewer", None) or {}).get("worth") or {}).get("chosen") or {}
    value = chosen.get("accuracy")
    return float(value) if isinstance(value, (int, float)) else None


def run_one(name: str, paths: dict[str, Path], work: Path, server: ReplayServer, gpt4o: np.ndarray, *, random_seed: int,
            **annotator: Any) -> dict[str, Any]:  # fmt: skip
    """One configuration end to end through `Annotator` in a fresh run dir; its figures (see `figures`)."""
    from autoannotator import Annotator, Task

    run_dir = work / "runs" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    task = Task.from_yaml(paths["task"])
    before = server.stats.snapshot()
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seed = None if annotator.get("mode") == "llm-only" else str(paths["seed"])
        result = Annotator(task, run_dir=run_dir, random_seed=random_seed, **annotator).annotate(str(paths["input"]), seed=seed)
    seconds = time.perf_counter() - started
    after = server.stats.snapshot()
    replay = {key: after[key] - before[key] for key in ("requests", "answered", "failed", "by_fallback")}
    replay["failures"] = after["failures"][len(before["failures"]):]
    out = figures(result, gpt4o) | {"seconds": round(seconds, 1), "replay": replay,
                                    "warnings": sorted({str(w.message).splitlines()[0][:300] for w in caught})}  # fmt: skip
    line = (f"  {name}: accuracy {out['accuracy']:.3f}, reviewed {out['share']:.1%}"
            + (f", overruled {out['overruled']['n']}" if out.get("overruled", {}).get("n") else "")
            + f", {replay['requests']} replay requests ({replay['failed']} failed lookups), {seconds:.0f} s")  # fmt: skip
    print(line, flush=True)
    for failure in replay["failures"][:MAX_LINE_FAILURES]:
        print(f"    failed lookup: {failure}", flush=True)
    return out


def _mean(mask: np.ndarray, right: np.ndarray) -> float | None:
    return float(right[mask].mean()) if mask.any() else None


def figures(result: Any, gpt4o: np.ndarray) -> dict[str, Any]:
    """Accuracy vs gold (an item without a label counts as wrong), realised review share, what the reviewer and the
    pool scored on the reviewed items (and GPT-4o's recorded answer there), combine's overruled items, the probe's
    figures, LLM calls and their would-be cost at GPT-4o's prices, and the consensus's ECE."""
    frame, s = result.frame, result.summary
    gold = frame["gold"].astype(str).to_numpy()
    label = frame["label"].astype(object).to_numpy()
    source = frame["label_source"].astype(str).to_numpy()
    answer = frame["reviewed_label"].astype(object).to_numpy()
    pool_label = frame["consensus_label"].astype(object).to_numpy()
    routed = source != "consensus"
    answered = routed & pd.notna(frame["reviewed_label"]).to_numpy()
    overruled = source == COMBINED_SOURCE
    out: dict[str, Any] = {
        "accuracy": float((label == gold).mean()), "n_items": int(len(frame)), "n_unlabeled": int(pd.isna(frame["label"]).sum()),
        "share": float(s.review_fraction), "answered_share": float(s.reviewed_fraction), "counts": dict(s.counts),
        "reviewer_on_reviewed": _mean(answered, answer == gold), "pool_on_reviewed": _mean(routed, pool_label == gold),
        "gpt4o_on_reviewed": _mean(routed, gpt4o == gold), "rule": s.rule,
        "consensus_ece": (s.consensus or {}).get("ece"), "predicted_accuracy": predicted_accuracy(s), "predicted_before": predicted_before(s),
    }  # fmt: skip
    if overruled.any() or "answer_overruled" in (s.reviewer or {}):
        out["overruled"] = {"n": int(overruled.sum()), "final_right": int((label == gold)[overruled].sum()),
                            "answer_right": int((answer == gold)[overruled].sum())}  # fmt: skip
    reviewer = s.reviewer or {}
    keep = ("review_mode", "note", "probe_items", "answered", "accuracy", "pool_accuracy_on_probe", "uncertain_probe_items",
            "accuracy_on_uncertain_probe", "pool_accuracy_on_uncertain_probe", "weaker_than_pool", "answer_kept", "answer_overruled",
            "calls")  # fmt: skip
    out["reviewer"] = {k: reviewer[k] for k in keep if k in reviewer}
    llm = s.llm or {}
    out["llm"] = {"calls": int(sum(u.get("calls", 0) for u in llm.values())),
                  "cost_usd": sum(u.get("cost_usd") or 0.0 for u in llm.values()), "by_account": llm}  # fmt: skip
    return out


def run_all(args: argparse.Namespace, paths: dict[str, Path], server: ReplayServer, rest: pd.DataFrame, results: dict) -> None:
    """Every configuration of the protocol, writing the results after each."""
    gpt4o, gold = rest["gpt4o_label"].to_numpy(), rest["label"].to_numpy()
    url = server.base_url
    specialists = pool(args.specialists)
    common = {"random_seed": args.random_seed, "rule": "learned"}
    configs = set(args.configs)

    def run(name: str, **kwargs: Any) -> dict[str, Any]:
        return run_one(name, paths, WORK, server, gpt4o, **common, **kwargs)

    alone = results.setdefault("gpt4o_alone", {})
    alone["direct"] = float((gpt4o == gold).mean())
    print(f"  GPT-4o alone (recorded labels vs gold on the input): {alone['direct']:.3f}", flush=True)
    if "llm-only" in configs:
        alone["llm_only"] = run_one("llm-only", paths, WORK, server, gpt4o, random_seed=args.random_seed, mode="llm-only",
                                    reviewer="llm", reviewer_options=llm_options(url))  # fmt: skip
        write_results(results, args, complete=False)
    if "none" in configs:
        results["no_review"] = run("none", specialists=specialists, reviewer="none", budget=0.0)
        write_results(results, args, complete=False)
    for budget in args.budgets:
        row = results.setdefault("budgets", {}).setdefault(f"{budget:g}", {})
        if "gold" in configs:
            row["gold"] = run(f"gold-{budget:g}", specialists=specialists, reviewer="gold:gold", budget=budget)
        for mode in ("override", "combine"):
            if mode in configs:
                row[mode] = run(f"{mode}-{budget:g}", specialists=specialists, reviewer="llm", reviewer_options=llm_options(url),
                                review_mode=mode, budget=budget)  # fmt: skip
        write_results(results, args, complete=False)
    if "voter" in configs:
        for budget in args.voter_budgets:
            reviewer = "gold:gold" if budget > 0 else "none"
            results.setdefault("voter", {})[f"{budget:g}"] = run(f"voter-{budget:g}", specialists=pool(args.specialists, url, not args.no_confidence),
                                                                 reviewer=reviewer, budget=budget)  # fmt: skip
            write_results(results, args, complete=False)


# --------------------------------------------------------------------------- results


def command_line(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/real_llm.py", f"--random-seed {args.random_seed}"]
    if args.limit is not None:
        parts.append(f"--limit {args.limit}")
    if tuple(args.budgets) != BUDGETS:
        parts.append("--budgets " + ",".join(f"{b:g}" for b in args.budgets))
    if args.specialists != ["tfidf", "embedding"]:
        parts.append("--specialists " + ",".join(args.specialists))
    if args.voter_budgets != [0.2]:
        parts.append("--voter-budgets " + ",".join(f"{b:g}" for b in args.voter_budgets))
    if set(args.configs) != set(CONFIGS):
        parts.append("--configs " + ",".join(args.configs))
    if args.seed_rows != SEED_ROWS:
        parts.append(f"--seed-rows {args.seed_rows}")
    if args.no_confidence:
        parts.append("--no-confidence")
    return " ".join(parts)


def stamp() -> dict[str, str]:
    """Machine, load average, commit (and whether src/ had uncommitted changes), date."""
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        dirty = ""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return {"machine": machine(), "load_average": load, "commit": git_commit() + (" + uncommitted changes in src/" if dirty else ""),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}  # fmt: skip


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met: True / False / None when not measured) for issue 20's benchmark targets."""
    rows: list[tuple[str, str, bool | None]] = []
    budgets = results.get("budgets", {})
    both = [(b, r["override"]["accuracy"], r["combine"]["accuracy"]) for b, r in budgets.items() if "override" in r and "combine" in r]
    if both:
        rows.append(("combine >= override - 0.5 points at every budget",
                     "; ".join(f"{float(b):.0%}: {c:.3f} vs {o:.3f} ({(c - o) * 100:+.1f})" for b, o, c in both),
                     all(c >= o - 0.005 - 1e-9 for _, o, c in both)))  # fmt: skip
    none = results.get("no_review", {}).get("accuracy")
    combined = [(b, r["combine"]["accuracy"]) for b, r in budgets.items() if "combine" in r]
    if none is not None and combined:
        rows.append((f"combine >= no review ({none:.3f}) at every budget",
                     "; ".join(f"{float(b):.0%}: {c:.3f} ({(c - none) * 100:+.1f})" for b, c in combined),
                     all(c >= none - 1e-9 for _, c in combined)))  # fmt: skip
    predicted = [(b, m, r[m]) for b, r in budgets.items() for m in ("override", "combine") if m in r]
    measured = [(b, m, f["predicted_accuracy"], f["accuracy"]) for b, m, f in predicted if f.get("predicted_accuracy") is not None]
    before = [(b, m, f["predicted_before"], f["accuracy"]) for b, m, f in predicted if f.get("predicted_before") is not None]
    if before:
        rows.append(("(shown, not a target) the prediction before the review, from the seed and the probe",
                     "; ".join(f"{m} {float(b):.0%}: {p:.3f} vs {a:.3f}" for b, m, p, a in before), None))  # fmt: skip
    if measured:
        rows.append(("the run's predicted accuracy (Build item 3) within 2 points of the realised one",
                     "; ".join(f"{m} {float(b):.0%}: {p:.3f} vs {a:.3f}" for b, m, p, a in measured),
                     all(abs(p - a) <= 0.02 for _, _, p, a in measured)))  # fmt: skip
    else:
        rows.append(("the run's predicted accuracy (Build item 3) within 2 points of the realised one",
                     "not measured: the run summary has no predicted accuracy at this commit", None))  # fmt: skip
    alone = results.get("gpt4o_alone", {})
    if "llm_only" in alone:
        got, want = alone["llm_only"]["accuracy"], alone["direct"]
        rows.append(("replay check: --mode llm-only through the server = the recorded labels' accuracy", f"{got:.4f} vs {want:.4f}",
                     abs(got - want) < 1e-9))  # fmt: skip
    return rows


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 100:.{digits}f}%"


def _acc(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def write_results(results: dict, args: argparse.Namespace, *, complete: bool) -> None:
    """benchmarks/results/real_llm.md (+ .json): stamp, protocol, targets, the accuracy table and the details."""
    results.setdefault("stamp", stamp())
    results["targets"] = [{"target": t, "measured": m, "met": ok} for t, m, ok in targets(results)]
    out = args.output
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
    p, st = results["protocol"], results["stamp"]
    url = "http://127.0.0.1:PORT/v1"
    lines = [
        "# A real LLM reviewer, replayed: GPT-4o on pac_stance (issue 20)", "",
        *([] if complete else ["**Smoke or partial run** (`--limit`, a subset of `--budgets` or `--configs`, or not finished): "
                               "not the benchmark's figures.", ""]),
        f"- command: `{command_line(args)}`",
        f"- data: ../shared/data/{DATASET}/stance.csv ({p['rows']} rows: gold `label`, GPT-4o's recorded `gpt4o_label` and "
        f"`gpt4o_confidence`); shuffled with numpy `default_rng({args.random_seed}).permutation`; seed = the first {p['seed_rows']} rows "
        f"(text, label), input = the next {p['input_rows']} (text, gold column `gold`){' (cut by --limit)' if args.limit else ''}; "
        f"{p['input_rows_text_in_seed']} input rows have a text that is also a seed row's (the file repeats {p['repeated_texts']} texts)",
        f"- task: agrees / disagrees / neutral (`{p['task_file']}`, written by the script); pool `--specialists {','.join(args.specialists)} "
        "--rule learned` (the learned consensus over 5-fold cross-fitted seed predictions), trained and cross-fitted afresh in every run "
        "(a ready Specialist instance would skip the cross-fitting: issue 20's defect 4); budgets are whole-run `--budget` shares",
        f"- GPT-4o: its recorded answers replayed by benchmarks/replay_server.py on 127.0.0.1 (a free port), reached through the product's "
        f"real OpenAI client (`--reviewer llm --llm-base-url {url} --llm-model {MODEL}`, zero-shot prompt, json_schema answer, "
        f"logprobs {'from the recorded confidence' if not args.no_confidence else 'all on the recorded label'}); "
        "the server finds each item by the text in the request and answers an unknown one with HTTP 500; "
        "costs are what the product's ledger bills at GPT-4o's list prices for the tokens the server reports (nothing was paid)",
        "- configurations: no review (`--budget 0`, no reviewer); gold (`--reviewer gold:gold`); GPT-4o `--review-mode override`; GPT-4o "
        "`--review-mode combine` (probe: the default 100 seed items); GPT-4o alone (recorded labels vs gold on the input, and `--mode "
        "llm-only`); GPT-4o as an `llm` voter in the pool (tfidf, embedding, gpt-4o) with the gold reviewer",
        f"- machine: {st['machine']}; load average {st['load_average']} (2 cores shared with other jobs, one thread: seconds are not "
        f"comparable across machines); commit {st['commit']}; {st['date']}; random seed {args.random_seed}",
        "",
        "## Targets", "",
        "| target | measured | met |", "|---|---|---|",
        *[f"| {t['target']} | {t['measured']} | {'-' if t['met'] is None else 'met' if t['met'] else 'not met'} |" for t in results["targets"]],
    ]  # fmt: skip
    budgets = results.get("budgets", {})
    keys = list(budgets)
    none = results.get("no_review")
    alone = results.get("gpt4o_alone", {})

    def cell(f: dict | None) -> str:
        return "-" if f is None else f"{f['accuracy']:.3f} ({_pct(f['share'])})"

    lines += ["", "## Accuracy vs gold on the input (share of items reviewed)", "",
              "| configuration | " + " | ".join(f"budget {float(b):.0%}" for b in keys) + " |", "|---|" + "---:|" * len(keys)]  # fmt: skip
    if none:
        lines.append("| no review | " + " | ".join(cell(none) for _ in keys) + " |")
    for name, key in (("gold reviewer", "gold"), ("GPT-4o, override", "override"), ("GPT-4o, combine", "combine")):
        if any(key in budgets[b] for b in keys):
            lines.append(f"| {name} | " + " | ".join(cell(budgets[b].get(key)) for b in keys) + " |")
    if "direct" in alone:
        via = f"; `--mode llm-only`: {alone['llm_only']['accuracy']:.3f}" if "llm_only" in alone else ""
        lines.append(f"| GPT-4o alone (every item) | {alone['direct']:.3f} (recorded labels{via}) |" + " |" * (len(keys) - 1))
    reviewed = [(b, m, budgets[b][m]) for b in keys for m in ("gold", "override", "combine") if m in budgets[b]]
    if reviewed or none:
        lines += ["", "## The reviewed items, the probe and the cost", "",
                  "On the items each run sent to review: the reviewer's answer, the pool's consensus label and GPT-4o's recorded answer "
                  "against gold; overruled = combine kept another label than GPT-4o's (right after / GPT-4o was right). Probe: GPT-4o and "
                  "the pool on the probe's seed items, and on those the pool finds uncertain (n).", "",
                  "| run | share | reviewer on reviewed | pool on reviewed | GPT-4o on reviewed | overruled (right / GPT-4o right) | "
                  "probe: GPT-4o / pool | uncertain probe: GPT-4o / pool (n) | not shown better | LLM calls | cost at GPT-4o prices | seconds |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for b, m, f in ([("0", "none", none)] if none else []) + reviewed:
            r, o = f.get("reviewer", {}), f.get("overruled")
            probe = f"{_pct(r.get('accuracy'))} / {_pct(r.get('pool_accuracy_on_probe'))}" if "accuracy" in r else "-"
            hard = (f"{_pct(r.get('accuracy_on_uncertain_probe'))} / {_pct(r.get('pool_accuracy_on_uncertain_probe'))} "
                    f"({r.get('uncertain_probe_items')})") if "uncertain_probe_items" in r else "-"  # fmt: skip
            lines.append(f"| {m} {float(b):.0%} | {_pct(f['share'])} | {_pct(f['reviewer_on_reviewed'])} | {_pct(f['pool_on_reviewed'])} | "
                         f"{_pct(f['gpt4o_on_reviewed'])} | {'-' if not o else str(o['n']) + ' (' + str(o['final_right']) + ' / ' + str(o['answer_right']) + ')'} | "
                         f"{probe} | {hard} | {r.get('weaker_than_pool', '-')} | {f['llm']['calls']} | ${f['llm']['cost_usd']:.2f} | {f['seconds']:.0f} |")  # fmt: skip
    voter = results.get("voter", {})
    if voter:
        lines += ["", "## GPT-4o as a voter in the pool (tfidf, embedding, gpt-4o; learned rule; gold reviewer)", "",
                  "| budget | accuracy | share reviewed | pool on reviewed | LLM calls (voter) | cost at GPT-4o prices | consensus ECE | seconds |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for b, f in voter.items():
            lines.append(f"| {float(b):.0%} | {f['accuracy']:.3f} | {_pct(f['share'])} | {_pct(f['pool_on_reviewed'])} | {f['llm']['calls']} | "
                         f"${f['llm']['cost_usd']:.2f} | {_acc(f['consensus_ece'])} | {f['seconds']:.0f} |")  # fmt: skip
    replay = results.get("replay", {})
    lines += ["", "## Replay", "",
              f"- requests {replay.get('requests', 0)}, answered {replay.get('answered', 0)}, failed lookups {replay.get('failed', 0)} "
              f"(found by the longest-contained-text fallback: {replay.get('by_fallback', 0)})"]  # fmt: skip
    lines += [f"  - failed: `{f}`" for f in replay.get("failures", [])[:10]]
    seen = sorted({w for f in _all_runs(results) for w in f.get("warnings", [])})
    if seen:
        lines += ["", "## Warnings the runs gave", "", *[f"- {w}" for w in seen]]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _all_runs(results: dict) -> list[dict]:
    runs = [results.get("no_review"), results.get("gpt4o_alone", {}).get("llm_only")]
    runs += [f for r in results.get("budgets", {}).values() for f in r.values()]
    runs += list(results.get("voter", {}).values())
    return [f for f in runs if f]


CONFIGS = ("none", "gold", "override", "combine", "llm-only", "voter")


def _fractions(text: str) -> list[float]:
    values = [float(x) for x in text.split(",") if x.strip()]
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"budgets are fractions in [0, 1], got {text}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-seed", type=int, default=0, help="the shuffle's and every run's random seed")
    parser.add_argument("--budgets", type=_fractions, default=list(BUDGETS), help="comma-separated review budgets (default 0.1,0.2,0.3,0.5)")
    parser.add_argument("--voter-budgets", type=_fractions, default=[0.2], help="budgets of the GPT-4o-voter pool with the gold reviewer (0: no review)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N input rows (a quick smoke; the seed stays whole)")
    parser.add_argument("--seed-rows", type=int, default=SEED_ROWS)
    parser.add_argument("--specialists", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=["tfidf", "embedding"])
    parser.add_argument("--configs", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=list(CONFIGS),
                        help=f"comma-separated subset of {','.join(CONFIGS)}")  # fmt: skip
    parser.add_argument("--no-confidence", action="store_true", help="the server's logprobs put all mass on the recorded label")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"default: {(RESULTS / 'real_llm.md').relative_to(ROOT)}, or with --limit {(WORK / 'real_llm_smoke.md').relative_to(ROOT)}")
    args = parser.parse_args()
    if args.output is None:
        args.output = WORK / "real_llm_smoke.md" if args.limit is not None else RESULTS / "real_llm.md"
    unknown = set(args.configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configurations {sorted(unknown)} (use {', '.join(CONFIGS)})")

    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    torch.set_num_threads(1)
    path = DATA / DATASET / "stance.csv"
    frame, seed, rest = load_stance(path, args.random_seed, args.seed_rows, args.limit)
    book = answer_book(frame)
    paths = write_inputs(WORK, seed, rest)
    counts = frame["text"].value_counts()
    results: dict[str, Any] = {"protocol": {
        "rows": len(frame), "seed_rows": len(seed), "input_rows": len(rest), "random_seed": args.random_seed, "budgets": args.budgets,
        "specialists": args.specialists, "model": MODEL, "logprobs_from_confidence": not args.no_confidence,
        "input_rows_text_in_seed": int(rest["text"].isin(set(seed["text"])).sum()), "repeated_texts": int((counts > 1).sum()),
        "task_file": str(paths["task"].relative_to(ROOT)),
    }}  # fmt: skip
    results["stamp"] = stamp()  # the code the runs import, read before they start
    started = time.perf_counter()
    with ReplayServer(book, model=MODEL, use_confidence=not args.no_confidence) as server:
        print(f"replay server at {server.base_url}: {len(book.exact)} recorded texts; seed {len(seed)}, input {len(rest)}", flush=True)
        try:
            run_all(args, paths, server, rest, results)
        finally:
            results["replay"] = server.stats.snapshot()
            results["seconds"] = round(time.perf_counter() - started, 1)
            complete = set(args.configs) == set(CONFIGS) and args.limit is None and tuple(args.budgets) == BUDGETS
            write_results(results, args, complete=complete)
    replay = results["replay"]
    print(f"replay: {replay['requests']} requests, {replay['answered']} answered, {replay['failed']} failed lookups")
    for failure in replay["failures"][:MAX_LINE_FAILURES]:
        print(f"  failed lookup: {failure}")
    for t in results["targets"]:
        print(f"target: {t['target']}: {t['measured']} -> {'-' if t['met'] is None else 'met' if t['met'] else 'NOT met'}")
    print(f"done in {results['seconds']:.0f} s: {args.output}")


if __name__ == "__main__":
    main()
