"""The command line: `autoannotator annotate` and `autoannotator evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from autoannotator.errors import AnnotatorError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Label text datasets with a pool of small specialists; hard items go to a reviewer.")  # fmt: skip
console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def default_run_dir(output: Path) -> Path:
    """`labeled.csv` -> `labeled.csv.run/`: the same command always finds the same run store."""
    return output.with_name(output.name + ".run")


@app.command()
def annotate(
    task: Annotated[Path, typer.Option("--task", help="task YAML: name, instruction, labels, text column")],
    input: Annotated[Path, typer.Option("--input", help="CSV, JSONL or Parquet file to label")],
    output: Annotated[Path, typer.Option("--output", help="labeled file to write (CSV, JSONL or Parquet)")],
    seed: Annotated[Optional[Path], typer.Option("--seed", help="labeled seed file to train the specialists on (cold start)")] = None,
    specialists: Annotated[Optional[str], typer.Option("--specialists", help="comma-separated kinds, e.g. tfidf,embedding,lexicon")] = None,
    reviewer: Annotated[str, typer.Option("--reviewer", help="none, or gold:COLUMN")] = "none",
    epsilon: Annotated[Optional[float], typer.Option("--epsilon", help="review items with uncertainty >= E (default: any disagreement)")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="run store folder (default: OUTPUT.run)")] = None,
    rule: Annotated[str, typer.Option("--rule", help="uncertainty rule: vote (paper), margin or entropy")] = "vote",
    budget: Annotated[Optional[float], typer.Option("--budget", help="review this fraction of items, most uncertain first")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="items per chunk (one transaction each)")] = 512,
    seed_label_column: Annotated[str, typer.Option("--seed-label-column", help="label column of the seed file")] = "label",
    summary_json: Annotated[Optional[Path], typer.Option("--summary-json", help="also write the run summary as JSON")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Label INPUT with the specialist pool and write OUTPUT; rerun the same command to resume a stopped run."""
    from autoannotator.display import show_summary
    from autoannotator.pipeline import Annotator
    from autoannotator.task import Task

    try:
        annotator = Annotator(
            Task.from_yaml(task),
            run_dir=run_dir or default_run_dir(output),
            specialists=[s.strip() for s in specialists.split(",") if s.strip()] if specialists else None,
            reviewer=reviewer, rule=rule, epsilon=epsilon, budget=budget, chunk_size=chunk_size,
            seed_label_column=seed_label_column, progress=not quiet,
        )  # fmt: skip
        result = annotator.annotate(input, seed=seed, output=output)
    except AnnotatorError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", code=130)
    show_summary(console, result.summary)
    if summary_json:
        summary_json.write_text(json.dumps(result.summary.to_dict(), indent=2), encoding="utf-8")


@app.command()
def evaluate(
    labeled: Annotated[Path, typer.Argument(help="a file written by annotate")],
    gold: Annotated[str, typer.Option("--gold", help="column holding the true labels")],
    task: Annotated[Optional[Path], typer.Option("--task", help="task YAML: orders the labels and resolves aliases")] = None,
    json_output: Annotated[Optional[Path], typer.Option("--json", help="also write the scores as JSON")] = None,
) -> None:
    """Print accuracy, macro-F1, the confusion matrix, accuracy per label_source and counts per route."""
    from dataclasses import asdict

    from autoannotator.display import show_evaluation
    from autoannotator.io import read_table
    from autoannotator.report import evaluate_frame
    from autoannotator.task import Task

    try:
        frame = read_table(labeled)
        label_order = None
        if task is not None:
            spec = Task.from_yaml(task)
            label_order = spec.label_names
            if gold in frame:
                frame[gold] = frame[gold].map(lambda v: spec.resolve_label(v) or v if isinstance(v, str) else v)
        evaluation = evaluate_frame(frame, gold, label_order=label_order)
    except AnnotatorError as exc:
        fail(str(exc))
    show_evaluation(console, evaluation)
    if json_output:
        json_output.write_text(json.dumps(asdict(evaluation) | {"coverage": evaluation.coverage}, indent=2), encoding="utf-8")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
