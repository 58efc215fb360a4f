"""The command line: `autoannotator annotate`, `estimate`, `evaluate`, `review`, `plan`, `run` and the run tools."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console

from autoannotator.cli_options import FLAG, RunOptions, default_options, llm_options, resolve_run, run_options
from autoannotator.errors import AnnotatorError, InputWarning

if TYPE_CHECKING:
    from autoannotator.pipeline import AnnotationResult, Annotator
    from autoannotator.store import RunStore

class OneLineErrors(typer.Typer):
    """The `autoannotator` command: a bad flag or value prints one `error:` line (exit 2) instead of Click's box."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().__call__(*args, **kwargs)
        try:
            code = super().__call__(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            errors.print("aborted", highlight=False)
            code = 1
        except typer.TyperException as exc:  # Click's usage errors, as Typer raises them
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError":
                print(ctx.get_help())
            else:
                hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
                errors.print(f"[bold red]error:[/] {' '.join(exc.format_message().split())}{hint}", highlight=False, soft_wrap=True)
            code = getattr(exc, "exit_code", 2)
        sys.exit(code if isinstance(code, int) else 0)


app = OneLineErrors(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Label text datasets with a pool of small specialists; hard items go to a reviewer.")  # fmt: skip
console = Console() if sys.stdout.isatty() else Console(width=160)  # wide tables in logs and pipes
errors = Console(stderr=True)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 (warnings' signature)
    """Warnings about the user's input print as one 'warning:' line on stderr; others as Python shows them."""
    if issubclass(category, InputWarning):
        errors.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    else:
        python_show_warning(message, category, filename, lineno, file, line)


python_show_warning, warnings.showwarning = warnings.showwarning, show_warning


def fail(message: str, code: int = 2) -> None:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
@run_options()
def annotate(options: RunOptions) -> None:
    """Label INPUT with the specialist pool and write OUTPUT; rerun the same command to resume a stopped run.
    With --config, the pipeline file gives the settings and the flags given here override it."""
    execute_run(options)


def execute_run(options: RunOptions) -> None:
    """The body of `annotate` and `run`: resolve the settings, label, show and write the summary."""
    from autoannotator.display import show_summary
    from autoannotator.pipeline import Annotator
    from autoannotator.store.database import default_run_dir

    try:
        plan = resolve_run(options)
        annotator = Annotator(plan.task, run_dir=options.run_dir or default_run_dir(options.output), **plan.kwargs)
        result = annotator.annotate(options.input, seed=plan.seed, output=options.output, split=options.split)
    except AnnotatorError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", code=130)
    show_summary(console, result.summary)
    if options.summary_json:
        options.summary_json.write_text(json.dumps(result.summary.to_dict(), indent=2), encoding="utf-8")
    if options.push_to_hub:
        push_labeled(result, annotator, options.push_to_hub)


def push_labeled(result: AnnotationResult, annotator: Annotator, repo: str) -> None:
    """Push the labeled table with its dataset card (task, specialists, routes, reviewer, LLM costs)."""
    from autoannotator.hf_datasets import dataset_card, push_to_hub

    card = dataset_card(task=annotator.task, specialists=[s.display_name for s in annotator.specs], reviewer=annotator.reviewer_name,
                        counts=result.summary.counts, llm=result.summary.llm, repo=repo)  # fmt: skip
    try:
        push_to_hub(result.frame, repo, card)
    except AnnotatorError as exc:
        fail(f"{exc} (the output file is written)")
    console.print(f"pushed to the Hub: {repo}")


@app.command()
@run_options()
def estimate(
    options: RunOptions,
    sample: Annotated[int, typer.Option("--sample", min=1, help="items of the input scored to predict the run (seeded random sample)")] = 500,
    json_output: Annotated[Optional[Path], typer.Option("--json", help="also write the figures as JSON")] = None,
    curve_folds: Annotated[int, typer.Option("--curve-folds", min=0, help="cross-fitting folds on the seed for the accuracy curve (0: none)")] = 3,
    seconds_per_review: Annotated[Optional[float], typer.Option("--seconds-per-review", min=0, help="reviewer seconds per item (default: measured or assumed, see README)")] = None,
) -> None:
    """Predict the run annotate would do, paying nothing but the reviewer probe (--reviewer-probe): review share, LLM calls, tokens, $ and time, with 95% intervals.
    Takes annotate's options; trains (or loads) the pool in the run directory, where the run reuses it."""
    from autoannotator.display import show_estimate
    from autoannotator.pipeline import Annotator
    from autoannotator.store.database import default_run_dir

    try:
        plan = resolve_run(options)
        annotator = Annotator(plan.task, run_dir=options.run_dir or default_run_dir(options.output), **plan.kwargs | {"progress": False})
        figures = annotator.estimate(options.input, seed=plan.seed, sample=sample, curve_folds=curve_folds,
                                     seconds_per_review=seconds_per_review, split=options.split)  # fmt: skip
    except AnnotatorError as exc:
        fail(str(exc))
    show_estimate(console, figures)
    if json_output:
        json_output.write_text(json.dumps(figures.to_dict(), indent=2), encoding="utf-8")


@app.command()
def evaluate(
    labeled: Annotated[Path, typer.Argument(help="a file written by annotate")],
    gold: Annotated[Optional[str], typer.Option("--gold", help="column holding the true labels (without it: the audit's estimate, for a run with --audit)")] = None,
    task: Annotated[Optional[Path], typer.Option("--task", help="task YAML: orders the labels and resolves aliases")] = None,
    json_output: Annotated[Optional[Path], typer.Option("--json", help="also write the scores as JSON")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="run store of the file (default: LABELED.run), for LLM costs")] = None,
) -> None:
    """Print accuracy, macro-F1, the confusion matrix, accuracy per label_source and counts per route; for a run
    with --audit, the audit's estimated accuracy with its 95% interval (all that is shown without --gold)."""
    from dataclasses import asdict

    from autoannotator.audit import AUDIT_COLUMNS, audit_figures
    from autoannotator.display import show_audit, show_estimate_vs_actual, show_evaluation, show_llm_usage, show_reviewer
    from autoannotator.io import read_table, require_columns
    from autoannotator.report import evaluate_frame
    from autoannotator.store.database import default_run_dir
    from autoannotator.task import Task

    try:
        frame = read_table(labeled)
        if gold is None or "audited" in frame.columns:  # the audit's figures need annotate's output columns
            require_columns(frame, AUDIT_COLUMNS, source=f"{labeled} (not a file written by annotate?)")
        audit = audit_figures(frame)
        if gold is None:
            if audit is None:
                raise AnnotatorError(f"{labeled} has no audited items: give --gold COLUMN (or label with --audit F to estimate accuracy without gold)")
            show_audit(console, audit)
            if json_output:
                json_output.write_text(json.dumps({"audit": audit}, indent=2), encoding="utf-8")
            return
        label_order = None
        if task is not None:
            spec = Task.from_yaml(task)
            label_order = spec.label_names
            if gold in frame:
                frame[gold] = frame[gold].map(lambda v: spec.resolve_label(v) or v)
        evaluation = evaluate_frame(frame, gold, label_order=label_order)
    except AnnotatorError as exc:
        fail(str(exc))
    show_evaluation(console, evaluation)
    if audit is not None:
        show_audit(console, audit)
    usage, estimated, actual, reviewer = run_figures(run_dir or default_run_dir(labeled))
    show_reviewer(console, reviewer)
    if usage:
        show_llm_usage(console, usage)
    if estimated:
        show_estimate_vs_actual(console, estimated, actual)
    if json_output:
        scores = asdict(evaluation) | {"coverage": evaluation.coverage, "llm": usage} | ({"reviewer": reviewer} if reviewer else {})
        if estimated:
            scores |= {"estimate": estimated, "actual": actual}
        if audit is not None:
            scores |= {"audit": audit}
        json_output.write_text(json.dumps(scores, indent=2), encoding="utf-8")


def run_figures(run_dir: Path) -> tuple[dict, dict, dict, dict]:
    """From the run store, if there is one: LLM usage per model, the estimate made before the run (if any),
    the run's actual figures and the reviewer probe's figures (if any)."""
    from autoannotator.estimate import actual_figures
    from autoannotator.run.probing import probe_figures
    from autoannotator.store import STORE_FILE

    if not (run_dir / STORE_FILE).is_file():
        return {}, {}, {}, {}
    with open_store(run_dir) as store:
        return store.llm_usage(), json.loads(store.get_meta("estimate") or "{}"), actual_figures(store), probe_figures(store)


@app.command()
def review(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="the run whose hard items to review")],
    export: Annotated[Optional[Path], typer.Option("--export", help="write the queue as JSONL (fill 'label')")] = None,
    export_label_studio: Annotated[Optional[Path], typer.Option("--export-label-studio", help="write Label Studio tasks JSON (+ .xml config)")] = None,
    import_file: Annotated[Optional[Path], typer.Option("--import", help="apply answers from our JSONL or a Label Studio JSON export")] = None,
    serve: Annotated[bool, typer.Option("--serve", metavar=FLAG, help="serve the review page in the browser instead")] = False,
    host: Annotated[str, typer.Option("--host", help="address to bind (another than 127.0.0.1 exposes the page)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port of the review page")] = 8000,
    lease_seconds: Annotated[float, typer.Option("--lease-seconds", help="how long an item stays with one reviewer")] = 300.0,
    double_review: Annotated[bool, typer.Option("--double-review", metavar=FLAG, help="settle an item when two reviewers agree")] = False,
    on_conflict: Annotated[Optional[str], typer.Option("--on-conflict", help="an item given different labels in one --import file: first or last answer wins (default: none imported)")] = None,
) -> None:
    """Review the run's waiting hard items in the terminal or the browser, or export/import them; then rerun
    annotate to continue."""
    if serve:
        with locked(run_dir, "review --serve", shared=True):
            serve_review_page(run_dir, host=host, port=port, lease_seconds=lease_seconds, double_review=double_review)
        return
    if on_conflict not in (None, "first", "last"):
        fail(f"unknown --on-conflict '{on_conflict}' (use first or last)")
    with locked(run_dir, "review", shared=True), open_store(run_dir) as store:
        review_session(store, export, export_label_studio, import_file, on_conflict=on_conflict)


def serve_review_page(run_dir: Path, *, host: str, port: int, lease_seconds: float, double_review: bool) -> None:
    """Start the review page with a fresh access token, printed once here."""
    import secrets

    import uvicorn

    from autoannotator.web import create_app

    with open_store(run_dir):
        pass  # a clear error when there is no run here
    token = secrets.token_urlsafe(24)
    app = create_app(run_dir, token=token, lease_seconds=lease_seconds, double_review=double_review)
    if host not in ("127.0.0.1", "localhost", "::1"):
        errors.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach it and has the token can review")
    console.print(f"review page: http://{host}:{port}/?token={token}  (add &reviewer=NAME; Ctrl-C stops)", soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def review_session(
    store: RunStore, export: Path | None, export_label_studio: Path | None, import_file: Path | None, *, on_conflict: str | None = None
) -> None:
    """The body of `review`: export, import, or review in the terminal."""
    from autoannotator.review_queue import export_jsonl, export_label_studio as export_ls, import_answers
    from autoannotator.reviewers.base import ReviewItem
    from autoannotator.reviewers.human import require_terminal, review_in_terminal
    from autoannotator.task import Task

    try:
        store.start_session()
        task = Task.model_validate(store.fingerprint()["task"])
        pending = store.pending_review()
        if export:
            console.print(f"exported {export_jsonl(pending, task, export)} items to {export}")
        if export_label_studio:
            n = export_ls(pending, task, export_label_studio)
            console.print(f"exported {n} Label Studio tasks to {export_label_studio} (config: {export_label_studio.with_suffix('.xml')})")
        if import_file:
            report = import_answers(import_file, store, task, on_conflict=on_conflict)
            console.print(f"imported {report.imported} answers; {report.already_answered} items were already answered, "
                          f"{report.unanswered} left blank, {len(report.conflicts)} with conflicting answers; "
                          f"{len(report.mismatched)} lines whose row and id disagree, {len(report.unknown)} naming no item of the run")  # fmt: skip
            for problems, what in ((report.mismatched, "row and id name different items, not imported"),
                                   (report.unknown, "no such item in the run, not imported")):  # fmt: skip
                if problems:
                    errors.print(f"[yellow]warning:[/] {len(problems)} lines: {what}: {'; '.join(problems[:5])}{' ...' if len(problems) > 5 else ''}",
                                 highlight=False, soft_wrap=True)  # fmt: skip
            if report.conflicts:
                settled = f"the {on_conflict} answer imported" if on_conflict else "none of their answers imported (--on-conflict first|last picks one)"
                errors.print(f"[yellow]warning:[/] {len(report.conflicts)} items answered with different labels, {settled}: "
                             f"{'; '.join(report.conflicts[:5])}{' ...' if len(report.conflicts) > 5 else ''}", highlight=False, soft_wrap=True)  # fmt: skip
        if not (export or export_label_studio or import_file):
            items = [ReviewItem(row=r.row, item_id=r.item_id, text=r.text, votes=r.votes, consensus_label=r.consensus_label) for r in pending]
            if not items:
                console.print("nothing to review")
            else:
                require_terminal()
                stats = review_in_terminal(items, task, store, console=console)
                console.print(f"answered {stats.answered}, skipped {stats.skipped}, undone {stats.undone}; "
                              f"{len(store.pending_review())} still waiting")  # fmt: skip
        store.finish_session()
    except AnnotatorError as exc:
        fail(str(exc))


@app.command()
def plan(
    task: Annotated[Path, typer.Option("--task", help="task YAML")],
    output: Annotated[Optional[Path], typer.Option("--output", help="pipeline file to write (default: pipeline.yaml beside the task)")] = None,
    seed: Annotated[Optional[Path], typer.Option("--seed", help="labeled seed file: lets trainable specialists compete")] = None,
    sample: Annotated[Optional[Path], typer.Option("--sample", help="labeled sample for LogME ranking")] = None,
    select: Annotated[str, typer.Option("--select", help="similarity (paper eq. 1) or logme")] = "similarity",
    k: Annotated[int, typer.Option("--k", help="how many specialists")] = 3,
    catalog_dir: Annotated[Optional[Path], typer.Option("--catalog-dir", help="folder of your own model folders (and catalog.yaml)")] = None,
    offline: Annotated[bool, typer.Option("--offline", metavar=FLAG, help="skip the live Hub search")] = False,
    reviewer: Annotated[str, typer.Option("--reviewer", help="reviewer of the planned run")] = "llm",
    llm_base_url: Annotated[Optional[str], typer.Option("--llm-base-url", help="server whose LLM writes the task profile and reviews")] = None,
    llm_model: Annotated[Optional[str], typer.Option("--llm-model", help="its model")] = None,
    epsilon: Annotated[Optional[float], typer.Option("--epsilon", help="review threshold (default: any disagreement)")] = None,
    beta: Annotated[Optional[int], typer.Option("--beta", help="refinement pool size (off if not given)")] = None,
    export_script_path: Annotated[Optional[Path], typer.Option("--export-script", help="also write a Python script that reproduces the run")] = None,
) -> None:
    """Choose specialists for the task, map their labels, and write a checked pipeline file."""
    import shutil

    from autoannotator.controller.plan import export_script, write_pipeline
    from autoannotator.controller.planner import make_plan

    output = output or task.parent / "pipeline.yaml"
    if select not in ("similarity", "logme"):
        fail(f"unknown --select '{select}' (use similarity or logme)")
    try:
        made = make_plan(task, output, k=k, method=select, seed=seed, sample=sample, catalog_dir=catalog_dir, hub=not offline,
                         reviewer=reviewer, llm_options=llm_options(base_url=llm_base_url, model=llm_model),
                         epsilon=epsilon, beta=beta)  # fmt: skip
        write_pipeline(output, made.text)  # only once it passes the same checks as a hand-written file
        for source, target in made.copies.items():
            shutil.copyfile(source, target)
        if export_script_path:
            export_script_path.write_text(export_script(made.spec, output.parent, export_script_path.parent), encoding="utf-8")
    except AnnotatorError as exc:
        fail(str(exc))
    console.print(made.text, highlight=False, markup=False)
    console.print(f"wrote {output}" + (f" and {export_script_path}" if export_script_path else ""))


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="pipeline file written by plan (or by hand)")],
    input: Annotated[Path, typer.Option("--input", help="CSV, JSONL or Parquet file to label")],
    output: Annotated[Path, typer.Option("--output", help="labeled file to write")],
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="run store folder (default: OUTPUT.run)")] = None,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", metavar=FLAG, help="allow specialists that ask for it")] = False,
    allow_dir: Annotated[Optional[list[Path]], typer.Option("--allow-dir", help="also load model and saved-specialist folders from here (repeatable)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", metavar=FLAG, help="no progress bar")] = False,
) -> None:
    """Execute a pipeline file: the same run as `annotate --config PIPELINE` (and as the equivalent flags)."""
    given = {"config": pipeline, "input": input, "output": output, "run_dir": run_dir, "trust_remote_code": trust_remote_code,
             "allow_dir": allow_dir, "quiet": quiet}  # fmt: skip
    execute_run(RunOptions(default_options() | given, frozenset(given)))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="the run's folder (OUTPUT.run by default), or the labeled file OUTPUT whose OUTPUT.run holds the run")],
    gold: Annotated[Optional[str], typer.Option("--gold", help="column of the labeled file with true labels: accuracy curves")] = None,
    output: Annotated[Path, typer.Option("--output", help="HTML file to write")] = Path("report.html"),
    labeled: Annotated[Optional[Path], typer.Option("--labeled", help="the labeled file holding --gold (default: the run's output)")] = None,
) -> None:
    """Write one self-contained HTML report of a run: routes, review cost and time, agreement, uncertainty,
    accuracy against review budget, refinement rounds, LLM ledger, unresolved items by reason."""
    from autoannotator.run_report import write_report

    try:
        written = write_report(run_dir, output, gold_column=gold, labeled=labeled)
    except AnnotatorError as exc:
        fail(str(exc))
    console.print(f"wrote {written}")


@app.command()
def versions(run_dir: Annotated[Path, typer.Option("--run-dir", help="the run")]) -> None:
    """List every saved version of each specialist: round, gate accuracy before/after, status."""
    from autoannotator.display import show_versions

    with open_store(run_dir) as store:
        show_versions(console, store.specialist_versions())


@app.command()
def rollback(
    run_dir: Annotated[Path, typer.Option("--run-dir", help="the run")],
    specialist: Annotated[str, typer.Option("--specialist", help="specialist name, e.g. tfidf")],
    version: Annotated[Optional[int], typer.Option("--version", help="version to make active (default: the one before)")] = None,
) -> None:
    """Make an earlier version of a specialist the active one; the next annotate run uses it."""
    with locked(run_dir, "rollback"), open_store(run_dir) as store:
        try:
            active = store.rollback(specialist, version)
        except AnnotatorError as exc:
            fail(str(exc))
    console.print(f"{specialist}: version {active} is active")


@contextmanager
def locked(run_dir: Path, command: str, *, shared: bool = False) -> Iterator[None]:
    """The run directory's lock (see `run_lock`) for a command on an existing run, or a one-line refusal
    naming the process that holds it."""
    from autoannotator.run_lock import RunBusyError, run_lock
    from autoannotator.store import STORE_FILE

    if not (run_dir / STORE_FILE).is_file():
        fail(f"no run store in {run_dir} (run annotate first)")
    try:
        with run_lock(run_dir, command, shared=shared):
            yield
    except RunBusyError as exc:
        fail(str(exc))


@contextmanager
def open_store(run_dir: Path) -> Iterator[RunStore]:
    """An existing run store, or a clear error."""
    from autoannotator.store import STORE_FILE, RunStore

    if not (run_dir / STORE_FILE).is_file():
        fail(f"no run store in {run_dir} (run annotate first)")
    try:
        store = RunStore(run_dir / STORE_FILE)
    except AnnotatorError as exc:
        fail(str(exc))
    try:
        yield store
    finally:
        store.close()


def main() -> None:
    app()

if __name__ == "__main__":
    main()
