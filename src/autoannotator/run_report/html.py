"""`autoannotator report`: one self-contained HTML file about a run, rendered from its run store.

The page has no script and loads nothing: plots are PNG data URIs, styles are inline, and a Content
Security Policy forbids scripts and remote loads. Jinja2 escapes every value taken from the data
(texts, label and specialist names, reasons, model names)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from autoannotator.errors import AnnotatorError
from autoannotator.io import read_table
from autoannotator.run.probing import probe_figures
from autoannotator.reasons import REASONS, unresolved_reason
from autoannotator.run_report import figures, plots
from autoannotator.store import STORE_FILE, RunStore
from autoannotator.store.database import default_run_dir
from autoannotator.task import Task


def environment() -> Environment:
    """The template environment: every value is escaped (autoescape on for all templates)."""
    return Environment(loader=PackageLoader("autoannotator.run_report", "templates"), autoescape=True, undefined=StrictUndefined)


def labeled_file(run_dir: Path, store: RunStore) -> Path:
    """The output file the run wrote last (recorded in the store), else OUTPUT for a run dir named OUTPUT.run."""
    recorded = store.get_meta("output")
    if recorded:
        return Path(recorded)
    if run_dir.name.endswith(".run"):
        return run_dir.with_name(run_dir.name.removesuffix(".run"))
    raise AnnotatorError(f"{run_dir}: no output file recorded; name the labeled file with --labeled")


def gold_labels(path: Path, column: str, task: Task, n_items: int) -> list[str | None]:
    """The gold column of the labeled file, one value per item in row order, resolved to task labels."""
    frame = read_table(path)
    if column not in frame.columns:
        raise AnnotatorError(f"{path}: no column '{column}'; the file has {list(frame.columns)}")
    if len(frame) != n_items:
        raise AnnotatorError(f"{path} has {len(frame)} rows but the run has {n_items} items: not this run's output")
    return [task.resolve_label(v) if isinstance(v, str) and v.strip() else None for v in frame[column].tolist()]


def build_context(store: RunStore, *, gold: list[str | None] | None, gold_column: str | None) -> dict[str, Any]:
    """Every figure and plot of the report, as plain values for the template."""
    fingerprint = store.fingerprint()
    task = Task.model_validate(fingerprint["task"])
    items = store.items()
    specialists = [s.get("name") or s["kind"] for s in fingerprint.get("specialists", [])]
    counts = store.count_by_source()
    routes = figures.routes(counts)
    usage = store.llm_usage()
    seconds = store.seconds_by_stage()
    reviewer = store.get_meta("reviewer") or "unknown"
    states = store.unresolved_states()
    has_reviewer = reviewer != "none"
    reasons = [unresolved_reason(*states[r.row], has_reviewer=has_reviewer) if r.row in states else "" for r in items]
    agreement = figures.agreement(items, specialists)
    curve = figures.budget_curve(items, gold)
    uncertainty = figures.uncertainty_by_route(items)
    candidates = [(f"{v['name']} r{r['id']}", v) for r in store.rounds() for v in r["details"]]
    reviewed = figures.reviewed(items)
    costs = [u["cost_usd"] for u in usage.values()]
    cost = None if None in costs else sum(costs)  # unknown when any model's price is unknown
    return {
        "task": task, "reviewer": reviewer, "specialists": specialists, "n_items": len(items), "gold_column": gold_column,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "run_dir": str(store.path.parent),
        "routes": routes, "routes_plot": plots.routes_plot([r.name for r in routes], [r.share for r in routes]) if routes else None,
        "review": {"items": len(reviewed), "by_route": {r.name: r.items for r in routes if r.name in figures.REVIEW_SOURCES},
                   "llm_used": bool(usage), "cost_usd": cost, "cost_per_item": cost / len(reviewed) if reviewed and cost is not None else None,
                   "llm_seconds": sum(u["seconds"] for u in usage.values()), "review_seconds": seconds.get("review"),
                   "total_seconds": seconds.get("total")},
        "agreement": agreement, "specialist_accuracy": agreement.accuracy(),
        "agreement_plot": plots.agreement_plot(agreement) if reviewed and specialists else None,
        "uncertainty_plot": plots.uncertainty_plot(uncertainty) if uncertainty else None,
        "curve": curve, "curve_rows": curve_rows(curve), "curve_plot": plots.budget_plot(curve) if curve else None,
        "rounds": [round_row(name, v) for name, v in candidates],
        "rounds_plot": plots.rounds_plot([n for n, _ in candidates], [v["gate_before"] for _, v in candidates],
                                         [v["gate_after"] for _, v in candidates]) if candidates else None,
        "ledger": [asdict(row) for row in figures.ledger(usage, store.llm_latencies())],
        "unresolved": figures.unresolved_by_reason(items, reasons), "reason_help": REASONS, "probe": probe_figures(store),
    }  # fmt: skip


def round_row(name: str, candidate: dict) -> dict[str, Any]:
    return {"name": name, "train_size": candidate.get("train_size"), "seconds": candidate.get("seconds"),
            "before": candidate.get("gate_before"), "after": candidate.get("gate_after"), "promoted": bool(candidate.get("promoted"))}  # fmt: skip


def curve_rows(curve: figures.BudgetCurve | None) -> list[dict[str, float | None]]:
    """The oracle curve's points at 0/10/20/30/50/100% and the run's at its realised share, for a table."""
    if curve is None:
        return []
    rows = [{"budget": b, "oracle": a, "run": None} for b, a in zip(curve.budgets, curve.oracle) if round(b * 100) in (0, 10, 20, 30, 50, 100)]
    return rows + [{"budget": curve.run_budgets[-1], "oracle": None, "run": curve.run[-1]}]


def write_report(run_dir: str | Path, output: str | Path, *, gold_column: str | None = None, labeled: str | Path | None = None) -> Path:
    """Render the report of the run in `run_dir` (or of the labeled file `run_dir` whose OUTPUT.run folder
    holds the run) to `output` (HTML). With `gold_column`, accuracy curves come
    from that column of the labeled file (`labeled`, default: the output file the run wrote). Raises
    AnnotatorError when there is no run store or the labeled file does not fit the run."""
    run_dir, output = Path(run_dir), Path(output)
    if not (run_dir / STORE_FILE).is_file() and (default_run_dir(run_dir) / STORE_FILE).is_file():
        run_dir = default_run_dir(run_dir)  # the labeled file named instead of its run folder
    if not (run_dir / STORE_FILE).is_file():
        raise AnnotatorError(f"no run store in {run_dir} (run annotate first)")
    store = RunStore(run_dir / STORE_FILE)
    try:
        gold = None
        if gold_column is not None:
            task = Task.model_validate(store.fingerprint()["task"])
            path = Path(labeled) if labeled is not None else labeled_file(run_dir, store)
            gold = gold_labels(path, gold_column, task, len(store.items()))
        context = build_context(store, gold=gold, gold_column=gold_column)
    finally:
        store.close()
    html = environment().get_template("report.html.j2").render(**context)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf-8")
    return output
