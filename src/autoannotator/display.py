"""Render run summaries and evaluations as Rich tables for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from autoannotator.pipeline import RunSummary
from autoannotator.report import Evaluation
from autoannotator.specialists.base import specialist_class

ROUTE_ORDER = ["consensus", "llm", "human", "gold", "unresolved"]


def _ordered_routes(counts: dict[str, int]) -> list[str]:
    return [r for r in ROUTE_ORDER if r in counts] + sorted(r for r in counts if r not in ROUTE_ORDER)


def show_summary(console: Console, summary: RunSummary) -> None:
    table = Table(title="labels per route", title_justify="left")
    table.add_column("label_source")
    table.add_column("items", justify="right")
    table.add_column("share", justify="right")
    for route in _ordered_routes(summary.counts):
        n = summary.counts[route]
        table.add_row(route, str(n), f"{n / max(summary.n_items, 1):.1%}")
    table.add_row("total", str(summary.n_items), "100.0%", style="bold")
    console.print(table)
    console.print(
        f"labeled now: {summary.n_labeled_now}, resumed from earlier sessions: {summary.n_resumed}, "
        f"sent to review: {summary.review_fraction:.1%}, time: {summary.seconds.get('total', 0):.1f} s, "
        f"random seed: {summary.random_seed}"
    )
    if summary.reasons:
        console.print("unresolved by reason: " + ", ".join(f"{reason} {n}" for reason, n in summary.reasons.items()))
    if summary.llm:
        show_llm_usage(console, summary.llm)
    if summary.rounds:
        show_rounds(console, summary.rounds)
    if summary.not_refined:
        console.print(f"not refined (not trainable here, e.g. llm specialists): {', '.join(summary.not_refined)}")
    if summary.output:
        console.print(f"wrote {summary.output} (run store: {summary.run_dir})")


def show_evaluation(console: Console, evaluation: Evaluation) -> None:
    console.print(
        f"items: {evaluation.n_items}  labeled: {evaluation.n_labeled} ({evaluation.coverage:.1%})\n"
        f"accuracy: {evaluation.accuracy:.4f} (unresolved count as wrong)  "
        f"accuracy on labeled: {evaluation.accuracy_labeled:.4f}  macro-F1: {evaluation.macro_f1:.4f}"
    )
    routes = Table(title="per label_source", title_justify="left")
    for column in ("label_source", "items", "accuracy"):
        routes.add_column(column, justify="left" if column == "label_source" else "right")
    for route in _ordered_routes(evaluation.route_counts):
        acc = evaluation.route_accuracy.get(route)
        routes.add_row(route, str(evaluation.route_counts[route]), "-" if acc is None else f"{acc:.4f}")
    console.print(routes)
    matrix = Table(title="confusion matrix (rows: gold, columns: predicted)", title_justify="left")
    matrix.add_column("gold \\ predicted")
    for label in evaluation.labels:
        matrix.add_column(label, justify="right")
    for label, counts in zip(evaluation.labels, evaluation.confusion):
        if any(counts) or label != "(unresolved)":
            matrix.add_row(label, *map(str, counts))
    console.print(matrix)


def show_llm_usage(console: Console, usage: dict[str, dict[str, float]]) -> None:
    """Calls (paid), cache hits, failed attempts, tokens, $ ("unknown" where the price table lacks the model) and
    seconds per model, over the whole run."""
    table = Table(title="LLM usage (all sessions of this run)", title_justify="left")
    for column in ("model", "calls", "cache hits", "failed", "prompt tok", "completion tok", "$", "seconds"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model, u in usage.items():
        table.add_row(
            model, str(int(u["calls"])), str(int(u["cache_hits"])), str(int(u["failed"])), f"{int(u['prompt_tokens']):,}",
            f"{int(u['completion_tokens']):,}", "unknown" if u["cost_usd"] is None else f"{u['cost_usd']:.6f}", f"{u['seconds']:.1f}",
        )  # fmt: skip
    console.print(table)


def _accuracy(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.3f}"


def show_rounds(console: Console, rounds: list[dict]) -> None:
    """A line per refinement round and specialist: pool, training size and time, gate accuracy, promoted."""
    table = Table(title="refinement rounds", title_justify="left")
    for column in ("round", "pool", "gate", "specialist", "trained on", "seconds", "gate before", "gate after", "promoted"):
        table.add_column(column, justify="left" if column == "specialist" else "right")
    for r in rounds:
        for v in r["details"]:
            table.add_row(str(r["id"]), str(r["pool_size"]), str(r["gate_size"]), v["name"], str(v["train_size"]),
                          f"{v['seconds']:.1f}", _accuracy(v["gate_before"]), _accuracy(v["gate_after"]),
                          "yes" if v["promoted"] else "no (kept previous)")  # fmt: skip
    console.print(table)


def show_versions(console: Console, versions: list[dict]) -> None:
    table = Table(title="specialist versions", title_justify="left")
    for column in ("specialist", "version", "round", "status", "gate before", "gate after", "path"):
        table.add_column(column)
    for v in versions:
        table.add_row(v["name"], str(v["version"]), "-" if v["round"] is None else str(v["round"]), v["status"],
                      _accuracy(v["gate_before"]), _accuracy(v["gate_after"]), v["path"])  # fmt: skip
    console.print(table)
    fixed = sorted({v["name"] for v in versions if not specialist_class(v["kind"]).trainable})
    if fixed:
        console.print(f"never refined (not trainable here, e.g. llm specialists): {', '.join(fixed)}")
