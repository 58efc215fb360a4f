"""Render run summaries and evaluations as Rich tables for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from autoannotator.estimate import FIGURES, Estimate
from autoannotator.pipeline import RunSummary
from autoannotator.report import Evaluation
from autoannotator.specialists.base import specialist_class

ROUTE_ORDER = ["consensus", "llm", "llm+consensus", "human", "gold", "unresolved"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def show_reviewer(console: Console, figures: dict) -> None:
    """The review mode and the reviewer probe's figures (`probe.ProbeAnswers.figures`): accuracy with its 95%
    interval beside the pool's out-of-fold accuracy, on all probe items and on those the pool finds uncertain,
    the confusion matrix and the cost."""
    if not figures:
        return
    mode = figures.get("review_mode")
    if "answer_kept" in figures:
        mode = f"{mode} (answer kept on {figures['answer_kept']} items, overruled by the pool on {figures['answer_overruled']}: llm+consensus)"
    if mode:
        console.print(f"review mode: {mode}", highlight=False)
    if figures.get("note"):
        console.print(f"note: {figures['note']}", highlight=False)
    if "probe_items" not in figures:
        return
    cost = "unknown $" if figures["cost_usd"] is None else f"${figures['cost_usd']:.4f}"
    table = Table(title=f"reviewer probe: {figures['probe_items']} seed items, {figures['answered']} answered; cost {cost}, "
                        f"{figures['calls']} LLM calls, {figures['seconds']:.1f} s", title_justify="left")  # fmt: skip
    for column in ("probe items", "items", "reviewer accuracy (95% interval)", "pool accuracy (out-of-fold)"):
        table.add_column(column, justify="left" if column == "probe items" else "right")
    table.add_row("all", str(figures["answered"]), f"{_pct(figures['accuracy'])} ({_pct(figures['accuracy_low'])}-{_pct(figures['accuracy_high'])})",
                  _pct(figures["pool_accuracy_on_probe"]))  # fmt: skip
    table.add_row("uncertain to the pool", str(figures["uncertain_probe_items"]),
                  f"{_pct(figures['accuracy_on_uncertain_probe'])} ({_pct(figures['accuracy_on_uncertain_low'])}-{_pct(figures['accuracy_on_uncertain_high'])})",
                  _pct(figures["pool_accuracy_on_uncertain_probe"]))  # fmt: skip
    console.print(table)
    matrix = Table(title="reviewer's confusion on the probe (rows: true label, columns: its answer)", title_justify="left")
    matrix.add_column("true \\ answer")
    for label in figures["labels"]:
        matrix.add_column(label, justify="right")
    for label, row in zip(figures["labels"], figures["confusion"]):
        matrix.add_row(label, *(str(n) for n in row))
    console.print(matrix)
    if figures["weaker_than_pool"]:
        console.print("[yellow]the reviewer is not shown better than the pool on the items it will see (interval included)[/yellow]")
    if figures.get("worth"):
        show_worth(console, figures["worth"])
    if figures.get("expected_accuracy_basis"):
        console.print(f"expected accuracy of this run's output with this reviewer: {_pct(figures['expected_accuracy'])} "
                      f"({figures['expected_accuracy_basis']}; the table above was predicted before the review, from the seed)", highlight=False)  # fmt: skip


def show_worth(console: Console, worth: dict) -> None:
    """What the reviewer is worth (`reviewer_worth.reviewer_worth`): the expected accuracy and cost at each review share."""
    table = Table(title=f"expected accuracy with this reviewer, predicted before the review (from {worth['probe_items']} probe and "
                        f"{worth['seed_items']} seed items)",
                  title_justify="left")  # fmt: skip
    for column in ("reviewed", "expected accuracy", "review cost"):
        table.add_column(column, justify="right")
    for row in worth["curve"]:
        table.add_row(f"{row['share']:.0%}", _pct(row["accuracy"]), _usd(row["cost_usd"]))
    table.add_row("reviewer alone", _pct(worth["reviewer_alone"]["accuracy"]), _usd(worth["reviewer_alone"]["cost_usd"]))
    if "chosen" in worth:
        table.add_row(f"this run ({worth['chosen']['share']:.0%})", _pct(worth["chosen"]["accuracy"]), _usd(worth["chosen"]["cost_usd"]))
    console.print(table)
    if worth.get("alone_better"):
        console.print("[yellow]the reviewer alone is expected to beat this setting[/yellow]")


def _usd(value: float | None) -> str:
    return "unknown $" if value is None else f"${value:.2f}"


def show_consensus(console: Console, summary: RunSummary) -> None:
    """The learned rule's calibration and weights, or why the run fell back to the vote rule."""
    note = summary.consensus
    if "fallback" in note:
        console.print(f"[yellow]{note['fallback']}[/yellow]")
    elif "ece" in note:
        weights = ", ".join(f"{name} {w:.2f}" for name, w in note["weights"].items())
        console.print(f"learned consensus: ECE {note['ece']:.3f} ({note['folds']}-fold cross-validated on {note['n_seed']} seed items); "
                      f"weight per specialist: {weights}")  # fmt: skip


def _percent(interval: dict | None) -> str:
    if interval is None:
        return "- (no audited item answered)"
    return f"{interval['estimate']:.1%} [{interval['low']:.1%}, {interval['high']:.1%}]"


def show_target(console: Console, target: dict) -> None:
    """--target-accuracy: the threshold certified and in force, the guarantee with its assumption, the guard's events."""
    if not target:
        return
    certificate = target["certificate"]
    threshold = target["threshold"]
    routed = "every item goes to review" if threshold is None else f"items with U > {threshold:.4f} go to review"
    console.print(f"target accuracy {target['target']:.1%} with probability {target['confidence']:.0%} "
                  f"({certificate.get('n_calibration', 0)} seed items, {certificate.get('method', '')}): {routed}")  # fmt: skip
    style = "green" if target["holds"] else "yellow"
    console.print(f"[{style}]guarantee: {target['guarantee']}[/{style}]")
    if len(target.get("certificates", [])) > 1:
        for c in target["certificates"]:
            at = "nothing certified" if c["threshold"] is None else f"U <= {c['threshold']:.4f}"
            console.print(f"  certificate {c['id']}: {at}, accepted {c['n_accepted']} items")
    if target.get("guard_note"):
        console.print(f"[yellow]{target['guard_note']}[/yellow]")
    for event in target["guard"]:
        after = "every item" if event["threshold_after"] is None else f"U > {event['threshold_after']:.4f}"
        console.print(f"[yellow]audit guard after {event['after_items']} items: {event['audited_accuracy']:.1%} on {event['n_audited']} "
                      f"audited items, below the target; review threshold raised to {after}[/yellow]")  # fmt: skip


def show_audit(console: Console, audit: dict) -> None:
    """--audit (and `evaluate` without gold): the estimated accuracy of the accepted labels and of the output."""
    if not audit.get("n_audited"):
        console.print(f"audit: no auto-accepted item was drawn (--audit {audit.get('share', 0):g}): nothing to estimate", highlight=False)
        return
    console.print(f"audit: {audit['n_answered']} of {audit['n_audited']} audited auto-accepted items answered, {audit['n_agree']} agree; "
                  f"accuracy of the auto-accepted labels {_percent(audit['accepted_accuracy'])}, of the whole output (labeled items) "
                  f"{_percent(audit['output_accuracy'])} ({audit['interval']}; {audit['note']})")  # fmt: skip


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
        f"without a label: {summary.n_unlabeled}, "
        f"sent to review: {summary.review_fraction:.1%}, time: {summary.seconds.get('total', 0):.1f} s, "
        f"random seed: {summary.random_seed}"
    )
    audited = summary.audit.get("n_answered", 0) / max(summary.n_items, 1)
    if summary.budget_target is not None:
        extra = f" (+ {audited:.1%} audited)" if audited else ""
        unanswered = summary.review_fraction - audited - summary.reviewed_fraction
        extra += f"; {unanswered:.1%} more sent but left unresolved" if unanswered > 0.5 / max(summary.n_items, 1) else ""
        console.print(f"review budget: target {summary.budget_target:.1%} of all items, realised {summary.reviewed_fraction:.1%} reviewed{extra}")
    show_consensus(console, summary)
    show_reviewer(console, summary.reviewer)
    show_target(console, summary.target_accuracy)
    if summary.audit:
        show_audit(console, summary.audit)
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
    seconds per model, over the whole run; then, where any, the calls with estimated usage and the requests lost
    in flight (both in the tokens and $ at their worst case)."""
    table = Table(title="LLM usage (all sessions of this run)", title_justify="left")
    for column in ("model", "calls", "cache hits", "failed", "prompt tok", "completion tok", "$", "seconds"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model, u in usage.items():
        table.add_row(
            model, str(int(u["calls"])), str(int(u["cache_hits"])), str(int(u["failed"])), f"{int(u['prompt_tokens']):,}",
            f"{int(u['completion_tokens']):,}", "unknown" if u["cost_usd"] is None else f"{u['cost_usd']:.6f}", f"{u['seconds']:.1f}",
        )  # fmt: skip
    console.print(table)
    for model, u in usage.items():
        if u.get("estimated") or u.get("lost"):
            console.print(f"{model}: estimated usage: {int(u['estimated'])} calls (no plausible usage in the answer), lost in flight: "
                          f"{int(u['lost'])} requests (sent, never answered); each counted at its worst case")  # fmt: skip


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


FIGURE_FORMATS = {"review_fraction": "{:.1%}", "llm_calls": "{:,.0f}", "prompt_tokens": "{:,.0f}", "completion_tokens": "{:,.0f}",
                  "cost_usd": "${:,.4f}", "seconds": "{:,.1f}", "seconds_specialists": "{:,.1f}", "seconds_reviewer": "{:,.1f}"}  # fmt: skip


def show_estimate(console: Console, estimate: Estimate) -> None:
    """The predicted figures with their 95% intervals, the notes on assumptions, and the seed's accuracy curve."""
    paid = "nothing paid but the reviewer probe" if estimate.reviewer.get("calls") else "nothing paid"
    table = Table(title=f"estimate for {estimate.n_items:,} items (sample of {estimate.n_sampled:,}; {paid})", title_justify="left")
    for column in ("figure", "estimate", "95% low", "95% high"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for name in (*FIGURES, "seconds_specialists", "seconds_reviewer"):
        value, fmt = getattr(estimate, name), FIGURE_FORMATS[name]
        table.add_row(name, fmt.format(value.value), fmt.format(value.low), fmt.format(value.high))
    console.print(table)
    if estimate.model:
        console.print(f"reviewer model: {estimate.model}; prompt tokens counted with {estimate.tokenizer}")
    if estimate.seconds_training:
        console.print(f"training the pool took {estimate.seconds_training:.1f} s (saved in the run directory; the run reuses it)")
    for note in estimate.notes:
        console.print(f"note: {note}", highlight=False)
    if estimate.curve:
        curve = Table(title="accuracy against review share, predicted on the seed (out-of-fold; reviewed items counted right)",
                      title_justify="left")  # fmt: skip
        for column in ("review share", "accuracy", "consensus alone", ""):
            curve.add_column(column, justify="right")
        for point in estimate.curve:
            curve.add_row(f"{point['review_fraction']:.1%}", f"{point['accuracy']:.3f}", f"{point['consensus_accuracy']:.3f}",
                          "your routing" if point["configured"] else "")  # fmt: skip
        console.print(curve)
    show_reviewer(console, estimate.reviewer)


def show_estimate_vs_actual(console: Console, estimate: dict, actual: dict) -> None:
    """The estimate kept in the run store next to what the run did (figures of `FIGURES`)."""
    table = Table(title="estimate against actual (this run)", title_justify="left")
    for column in ("figure", "estimate", "95% interval", "actual", "actual / estimate"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for name in FIGURES:
        fmt, guess, real = FIGURE_FORMATS[name], estimate[name], actual.get(name)
        ratio = "-" if real is None or not guess else f"{real / guess:.2f}"
        interval = f"{fmt.format(estimate[name + '_low'])} - {fmt.format(estimate[name + '_high'])}"
        table.add_row(name, fmt.format(guess), interval, "-" if real is None else fmt.format(real), ratio)
    console.print(table)
