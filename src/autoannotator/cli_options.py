"""The options of a labeling run, defined once for every command that starts or plans one (`annotate`,
`estimate`), grouped into help panels, and merged with a pipeline file (`--config`): flags given on the
command line override the file, the file overrides the defaults."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, get_type_hints

import typer

from autoannotator.errors import AnnotatorError

if TYPE_CHECKING:
    from autoannotator.task import Task

IO = "Input and output"
SPECIALISTS = "Specialists"
ROUTING = "Routing"
REVIEWER = "Reviewer"
LLM = "LLM"
REFINEMENT = "Refinement"
EXECUTION = "Execution"
FLAG = ""  # metavar of an on/off flag: typer would show it as taking a <bool> value


def _options(
    *,
    task: Annotated[Optional[Path], typer.Option("--task", help="task YAML: name, instruction, labels, text column (or --config)", rich_help_panel=IO)] = None,
    input: Annotated[Path, typer.Option("--input", help="CSV, JSONL or Parquet file, or a Hugging Face datasets folder (save_to_disk), to label", rich_help_panel=IO)],
    output: Annotated[Path, typer.Option("--output", help="labeled file to write (CSV, JSONL, Parquet; no suffix: a datasets folder)", rich_help_panel=IO)],
    config: Annotated[Optional[Path], typer.Option("--config", help="pipeline file (written by plan): its settings, with the flags given here as overrides", rich_help_panel=IO)] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="split of a DatasetDict folder given as --input", rich_help_panel=IO)] = None,
    push_to_hub: Annotated[Optional[str], typer.Option("--push-to-hub", help="also push the labeled dataset with a dataset card to this Hub repo (token: HF_TOKEN)", rich_help_panel=IO)] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="run store folder (default: OUTPUT.run)", rich_help_panel=IO)] = None,
    summary_json: Annotated[Optional[Path], typer.Option("--summary-json", help="also write the run summary as JSON", rich_help_panel=IO)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", metavar=FLAG, help="no progress bar", rich_help_panel=IO)] = False,
    specialists: Annotated[Optional[str], typer.Option("--specialists", help="comma-separated kinds, e.g. tfidf,embedding,lexicon", rich_help_panel=SPECIALISTS)] = None,
    seed: Annotated[Optional[Path], typer.Option("--seed", help="labeled seed file to train the specialists on (cold start)", rich_help_panel=SPECIALISTS)] = None,
    seed_label_column: Annotated[str, typer.Option("--seed-label-column", help="label column of the seed file", rich_help_panel=SPECIALISTS)] = "label",
    seed_label: Annotated[Optional[str], typer.Option("--seed-label", help="cold start without a seed file: gold:COLUMN, llm or human labels --seed-size items first", rich_help_panel=SPECIALISTS)] = None,
    seed_size: Annotated[int, typer.Option("--seed-size", help="items the --seed-label reviewer labels first", rich_help_panel=SPECIALISTS)] = 0,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", metavar=FLAG, help="allow specialists that ask for it (task or --config file, saved folders, the run directory)", rich_help_panel=SPECIALISTS)] = False,
    allow_dir: Annotated[Optional[list[Path]], typer.Option("--allow-dir", help="let the --config file load model and saved-specialist folders from here too (repeatable)", rich_help_panel=SPECIALISTS)] = None,
    rule: Annotated[str, typer.Option("--rule", help="uncertainty rule: vote (paper), margin, entropy, or learned (an aggregator stacked on the seed; U = 1 - max posterior)", rich_help_panel=ROUTING)] = "vote",
    epsilon: Annotated[Optional[float], typer.Option("--epsilon", help="review items with uncertainty >= E (default: any disagreement)", rich_help_panel=ROUTING)] = None,
    budget: Annotated[Optional[float], typer.Option("--budget", help="review this fraction of all items over the whole run, most uncertain first", rich_help_panel=ROUTING)] = None,
    target_accuracy: Annotated[Optional[float], typer.Option("--target-accuracy", help="review the fewest items such that the auto-accepted labels are at least this accurate (with --confidence; needs --rule learned and a seed)", rich_help_panel=ROUTING)] = None,
    confidence: Annotated[Optional[float], typer.Option("--confidence", help="probability with which --target-accuracy holds (learn-then-test on the seed; default 0.9; only with --target-accuracy)", rich_help_panel=ROUTING)] = None,
    audit: Annotated[Optional[float], typer.Option("--audit", help="also send this seeded random share of auto-accepted items to the reviewer and estimate the run's accuracy (default with --target-accuracy: 0.05)", rich_help_panel=ROUTING)] = None,
    mode: Annotated[str, typer.Option("--mode", help="specialists (default), or llm-only: the reviewer labels every item", rich_help_panel=ROUTING)] = "specialists",
    reviewer: Annotated[str, typer.Option("--reviewer", help="none, gold:COLUMN, llm or human", rich_help_panel=REVIEWER)] = "none",
    reviewer_probe: Annotated[Optional[int], typer.Option("--reviewer-probe", min=0, help="seed items the reviewer labels first, to measure it against the pool (default: 100 for an LLM, 0 for gold and human; paid once)", rich_help_panel=REVIEWER)] = None,
    review_mode: Annotated[Optional[str], typer.Option("--review-mode", help="combine: weigh the reviewer's answer by its measured confusion with the pool's posterior (default for an LLM); override: take the answer (default for gold and human)", rich_help_panel=REVIEWER)] = None,
    require_better_reviewer: Annotated[bool, typer.Option("--require-better-reviewer", metavar=FLAG, help="stop before the paid review when the probe does not show the reviewer better than the pool on uncertain items", rich_help_panel=REVIEWER)] = False,
    llm_base_url: Annotated[Optional[str], typer.Option("--llm-base-url", help="OpenAI-compatible server; none: the embedded model", rich_help_panel=LLM)] = None,
    llm_model: Annotated[Optional[str], typer.Option("--llm-model", help="model name at the server, or gemma3-270m | smollm2-135m | FILE.gguf", rich_help_panel=LLM)] = None,
    llm_api_key_env: Annotated[str, typer.Option("--llm-api-key-env", help="environment variable holding the API key", rich_help_panel=LLM)] = "OPENAI_API_KEY",
    llm_prompt: Annotated[str, typer.Option("--llm-prompt", help="zero-shot, one-shot, k-shot or cot", rich_help_panel=LLM)] = "zero-shot",
    llm_shots: Annotated[Optional[int], typer.Option("--llm-shots", help="examples in a k-shot prompt", rich_help_panel=LLM)] = None,
    llm_structured: Annotated[str, typer.Option("--llm-structured", help="json_schema, json_object (llama.cpp) or none", rich_help_panel=LLM)] = "json_schema",
    llm_samples: Annotated[Optional[int], typer.Option("--llm-samples", help="answers per item; more than one: self-consistency (their majority)", rich_help_panel=LLM)] = None,
    llm_max_in_flight: Annotated[int, typer.Option("--llm-max-in-flight", help="requests in flight at once", rich_help_panel=LLM)] = 8,
    llm_rate_limit: Annotated[Optional[float], typer.Option("--llm-rate-limit", help="at most this many requests per second", rich_help_panel=LLM)] = None,
    llm_timeout: Annotated[float, typer.Option("--llm-timeout", help="seconds per request", rich_help_panel=LLM)] = 60.0,
    llm_max_retries: Annotated[int, typer.Option("--llm-max-retries", help="retries on 429, 5xx, timeouts", rich_help_panel=LLM)] = 5,
    price_table: Annotated[Optional[Path], typer.Option("--price-table", help="YAML of USD per 1M tokens per model", rich_help_panel=LLM)] = None,
    llm_price_in: Annotated[Optional[float], typer.Option("--llm-price-in", min=0, help="USD per 1M input tokens of --llm-model (instead of a price table)", rich_help_panel=LLM)] = None,
    llm_price_out: Annotated[Optional[float], typer.Option("--llm-price-out", min=0, help="USD per 1M output tokens of --llm-model (instead of a price table)", rich_help_panel=LLM)] = None,
    max_cost: Annotated[Optional[float], typer.Option("--max-cost", min=0, help="hard cap on the run's LLM spend in USD (all sessions; in-flight requests counted)", rich_help_panel=LLM)] = None,
    max_llm_calls: Annotated[Optional[int], typer.Option("--max-llm-calls", min=0, help="hard cap on the run's LLM requests (all sessions)", rich_help_panel=LLM)] = None,
    beta: Annotated[Optional[int], typer.Option("--beta", help="refine the specialists each time this many reviewed items wait (off if not given)", rich_help_panel=REFINEMENT)] = None,
    replay: Annotated[float, typer.Option("--replay", help="earlier reviewed + seed items mixed into a round, per pool item", rich_help_panel=REFINEMENT)] = 0.5,
    replay_consensus: Annotated[float, typer.Option("--replay-consensus", help="unanimous consensus items mixed in, per pool item", rich_help_panel=REFINEMENT)] = 0.25,
    gate_fraction: Annotated[float, typer.Option("--gate-fraction", help="share of each pool kept aside to judge refined models", rich_help_panel=REFINEMENT)] = 0.2,
    rescore_below: Annotated[Optional[float], typer.Option("--rescore-below", help="after a promotion, re-score consensus items less confident than this", rich_help_panel=REFINEMENT)] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="items per chunk (one transaction each)", rich_help_panel=EXECUTION)] = 512,
    executor: Annotated[str, typer.Option("--executor", help="local, or ray: the specialist layer on Ray Data actor pools", rich_help_panel=EXECUTION)] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="existing cluster: auto or ray://HOST:10001 (default: start a local one)", rich_help_panel=EXECUTION)] = None,
    ray_actors: Annotated[int, typer.Option("--ray-actors", help="actors in the specialist pool", rich_help_panel=EXECUTION)] = 2,
    random_seed: Annotated[Optional[int], typer.Option("--random-seed", min=0, help="fixes every random choice of the run (default: the pipeline's or task file's random_seed, else 0)", rich_help_panel=EXECUTION)] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic", metavar=FLAG, help="deterministic GPU kernels only (slower on a GPU; CPU runs are deterministic already)", rich_help_panel=EXECUTION)] = False,
) -> None:  # fmt: skip
    """The one definition of the run options (never called: its signature is what commands take)."""


OPTION_PARAMETERS = list(inspect.signature(_options).parameters.values())
OPTION_TYPES = get_type_hints(_options, include_extras=True)
OPTION_NAMES = frozenset(p.name for p in OPTION_PARAMETERS)

# Flags and the reviewer option each one sets (the names the LLM reviewer takes, as in a pipeline file).
LLM_FLAGS = {"llm_base_url": "base_url", "llm_model": "model", "llm_api_key_env": "api_key_env", "llm_prompt": "prompt",
             "llm_shots": "shots", "llm_samples": "samples", "llm_structured": "structured", "llm_max_in_flight": "max_in_flight",
             "llm_rate_limit": "rate_limit", "llm_timeout": "timeout_s", "llm_max_retries": "max_retries",
             "price_table": "price_table", "llm_price_in": "price_in", "llm_price_out": "price_out", "max_cost": "max_cost_usd",
             "max_llm_calls": "max_calls"}  # fmt: skip
REFINE_FLAGS = ("beta", "replay", "replay_consensus", "gate_fraction", "rescore_below")


@dataclass(frozen=True)
class RunOptions:
    """The run options of one command line: every value, and which of them the user gave (not defaults)."""

    values: dict[str, Any]
    given: frozenset[str]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def _given(source: Any) -> bool:
    """Whether a parameter's value came from the user (command line, environment, prompt), not a default."""
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def default_options() -> dict[str, Any]:
    """Every run option at its default (None for the required ones)."""
    return {p.name: None if p.default is inspect.Parameter.empty else p.default for p in OPTION_PARAMETERS}


def run_options(*, skip: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the command takes every run option (but `skip`) after its own parameters, grouped in the
    help's panels, and receives them as one `options: RunOptions` argument.

    >>> @app.command()
    ... @run_options(skip=("output",))
    ... def estimate(options: RunOptions, sample: int = 500) -> None: ...
    """
    shared = [p for p in OPTION_PARAMETERS if p.name not in skip]
    names = {p.name for p in shared}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own_hints = get_type_hints(command, include_extras=True)
        own = [p.replace(annotation=own_hints.get(p.name, p.annotation)) for p in inspect.signature(command).parameters.values()
               if p.name != "options"]  # fmt: skip

        @functools.wraps(command)
        def wrapper(ctx: typer.Context, **kwargs: Any) -> Any:
            values = default_options() | {name: kwargs.pop(name) for name in names}  # skipped ones at their defaults
            given = frozenset(n for n in names if _given(ctx.get_parameter_source(n)))
            return command(options=RunOptions(values, given), **kwargs)

        context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        parameters = [context, *own] + [p.replace(annotation=OPTION_TYPES[p.name]) for p in shared]
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters]
        wrapper.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        del wrapper.__wrapped__  # typer reads the signature above, not the command's
        return wrapper

    return decorate


@dataclass
class RunPlan:
    """What `annotate` runs: the task, the seed file and the Annotator's keyword arguments."""

    task: Task
    seed: Path | None
    kwargs: dict[str, Any]


def llm_options(**given: object) -> dict[str, object]:
    """LLM reviewer options the user set; defaults are left to the reviewer (the embedded model takes fewer)."""
    defaults = {"api_key_env": "OPENAI_API_KEY", "prompt": "zero-shot", "structured": "json_schema", "max_in_flight": 8,
                "timeout_s": 60.0, "max_retries": 5}  # fmt: skip
    return {k: v for k, v in given.items() if v is not None and defaults.get(k) != v}


def _flag_value(options: RunOptions, flag: str) -> Any:
    value = options.values[flag]
    return str(value) if isinstance(value, Path) else value


def resolve_run(options: RunOptions) -> RunPlan:
    """Merge the pipeline file of `--config` (if any) with the flags: a flag the user gave wins over the file,
    the file wins over a flag's default. Raises AnnotatorError on a bad file or a missing task."""
    from autoannotator.controller.plan import annotator_kwargs, load_pipeline
    from autoannotator.executors import create_executor
    from autoannotator.task import Task

    o = options
    if o.config is not None:
        spec, task, base = load_pipeline(o.config, allow_remote_code=o.trust_remote_code, allow_dirs=o.allow_dir or [])
        kwargs, given = annotator_kwargs(spec), o.given
        seed = base / spec.seed if spec.seed else None
        refine = spec.refine.model_dump() if spec.refine else None
        llm = {option: _flag_value(o, flag) for flag, option in LLM_FLAGS.items() if flag in given}
        kwargs["reviewer_options"] = dict(kwargs["reviewer_options"]) | llm
    else:
        if o.task is None:
            raise AnnotatorError("give the task: --task T.yaml, or --config pipeline.yaml")
        task, seed, refine, given = None, None, None, OPTION_NAMES  # every flag, its default included, applies
        kwargs = {"reviewer_options": llm_options(**{option: _flag_value(o, flag) for flag, option in LLM_FLAGS.items()})}
    if "task" in given and o.task is not None:
        task = Task.from_yaml(o.task)
    if "seed" in given:
        seed = o.seed
    if "specialists" in given:
        kwargs["specialists"] = [s.strip() for s in o.specialists.split(",") if s.strip()] if o.specialists else None
    for name in ("rule", "epsilon", "budget", "target_accuracy", "confidence", "audit", "chunk_size", "seed_label_column", "reviewer",
                 "random_seed", "reviewer_probe", "review_mode", "require_better_reviewer"):
        if name in given:
            kwargs[name] = o.values[name]
    if refine is not None or o.beta is not None:
        kwargs["refine"] = (refine or {}) | {f: o.values[f] for f in REFINE_FLAGS if f in given and o.values[f] is not None}
    kwargs.update(
        mode=o.mode, seed_reviewer=o.seed_label, seed_size=o.seed_size, progress=not o.quiet, allow_remote_code=o.trust_remote_code,
        deterministic=o.deterministic,
        executor=create_executor(o.executor, ray_address=o.ray_address, **({"num_actors": o.ray_actors} if o.executor == "ray" else {})),
    )  # fmt: skip
    return RunPlan(task=task, seed=seed, kwargs=kwargs)
