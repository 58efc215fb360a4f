"""The pipeline file: the generated "program" of a run, as validated data. `plan` writes it, `run` executes it,
`--export-script` turns it into a standalone Python script on the public API. What an LLM contributes
(profiles, label maps) ends up as data checked here, never as code that is executed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoannotator.errors import AnnotatorError
from autoannotator.refine import RefineSettings
from autoannotator.specialists import create_specialist
from autoannotator.task import SpecialistSpec, Task, format_validation_error

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ConsensusSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: Literal["vote", "margin", "entropy"] = "vote"
    epsilon: float | None = Field(None, ge=0, le=1)
    budget: float | None = Field(None, ge=0, le=1)


class ReviewerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: str = "none"
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _no_secrets(cls, options: dict[str, Any]) -> dict[str, Any]:
        if any("key" in k.lower() and k != "api_key_env" for k in options):
            raise ValueError("API keys do not belong in a pipeline file: name the variable with api_key_env")
        return options


class PipelineSpec(BaseModel):
    """Everything a run needs besides its input and output."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    task: str = Field(description="task YAML, relative to this file")
    specialists: list[SpecialistSpec] = Field(min_length=1)
    consensus: ConsensusSpec = Field(default_factory=ConsensusSpec)
    reviewer: ReviewerSpec = Field(default_factory=ReviewerSpec)
    refine: RefineSettings | None = None
    seed: str | None = Field(None, description="labeled seed file, relative to this file")
    seed_label_column: str = "label"
    chunk_size: int = Field(512, ge=1)


def _inside(base: Path, relative: str, what: str) -> Path:
    """`relative` resolved under `base`; absolute paths and paths that climb out are refused."""
    if Path(relative).is_absolute():
        raise AnnotatorError(f"{what} '{relative}' is an absolute path: pipeline files use paths relative to themselves")
    path = (base / relative).resolve()
    if not path.is_relative_to(base.resolve()):
        raise AnnotatorError(f"{what} '{relative}' points outside the pipeline's folder")
    return path


def load_pipeline(path: str | Path, *, allow_remote_code: bool = False) -> tuple[PipelineSpec, Task, Path]:
    """Read and check a pipeline file: schema, registered kinds and their options, label maps, paths.
    Returns (spec, task, the folder its relative paths start from)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotatorError(f"pipeline file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AnnotatorError(f"{path}: not valid YAML (or not plain data): {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise AnnotatorError(f"{path}: a pipeline file is a mapping (task, specialists, ...)")
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        raise AnnotatorError(f"{path}: {format_validation_error(exc)}") from None
    base = path.parent
    task = Task.from_yaml(_inside(base, spec.task, "task"))
    if spec.seed is not None:
        _inside(base, spec.seed, "seed")
    for specialist in spec.specialists:
        options = specialist.options
        if options.get("trust_remote_code") and not allow_remote_code:
            raise AnnotatorError(f"specialist '{specialist.display_name}' asks for trust_remote_code: run with --trust-remote-code to allow it")
        for key in ("model", "encoder"):
            value = options.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise AnnotatorError(f"specialist '{specialist.display_name}': {key} must be a string")
            local = base / value
            if not Path(value).is_absolute() and HUB_ID.match(value) and not local.exists():
                continue  # a Hub model id
            options[key] = str(_inside(base, value, f"{specialist.display_name}.{key}"))
        create_specialist(specialist.kind, task, **options)  # unknown kinds, unknown options, bad label maps
    return spec, task, base


def annotator_kwargs(spec: PipelineSpec) -> dict[str, Any]:
    """The Annotator arguments a pipeline spec stands for (besides task and run_dir)."""
    return {
        "specialists": spec.specialists, "reviewer": spec.reviewer.spec, "reviewer_options": spec.reviewer.options,
        "rule": spec.consensus.rule, "epsilon": spec.consensus.epsilon, "budget": spec.consensus.budget,
        "chunk_size": spec.chunk_size, "seed_label_column": spec.seed_label_column, "refine": spec.refine,
    }  # fmt: skip


def render_pipeline(spec: PipelineSpec, comments: dict[str, str], header: list[str]) -> str:
    """The pipeline as YAML with a comment on each choice (`comments` keyed by specialist name and section)."""
    data = spec.model_dump(mode="json", exclude_none=True)
    lines = [f"# {line}" for line in header] + [""]
    for key, value in data.items():
        if key in comments:
            lines.append(f"# {comments[key]}")
        if key == "specialists":
            lines.append("specialists:")
            for item in value:
                name = item.get("name") or item["kind"]
                if name in comments:
                    lines.append(f"  # {comments[name]}")
                block = yaml.safe_dump([item], sort_keys=False, allow_unicode=True).rstrip().splitlines()
                lines += [f"  {line}" for line in block]
        else:
            lines += yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True).rstrip().splitlines()
    return "\n".join(lines) + "\n"


def export_script(spec: PipelineSpec, pipeline_dir: Path, script_dir: Path) -> str:
    """A standalone Python script on the public API that reproduces the run. Every value is written as a
    JSON literal of validated data."""
    kwargs = annotator_kwargs(spec)
    kwargs["specialists"] = [s.model_dump(mode="json", exclude_none=True) for s in spec.specialists]
    kwargs["refine"] = spec.refine.model_dump(mode="json") if spec.refine else None
    literal = lambda v: repr(json.loads(json.dumps(v)))  # noqa: E731 - plain data only
    arguments = "\n".join(f"    {k}={literal(v)}," for k, v in kwargs.items())
    seed = f"PIPELINE_DIR / {literal(spec.seed)}" if spec.seed else "None"
    relative = os.path.relpath(pipeline_dir.resolve(), script_dir.resolve())
    return f'''"""Reproduces the run described by the pipeline file (generated by `autoannotator plan --export-script`).

    python {{this file}} INPUT OUTPUT [RUN_DIR]
"""

import sys
from pathlib import Path

from autoannotator import Annotator, Task

PIPELINE_DIR = (Path(__file__).resolve().parent / {literal(relative)}).resolve()
task = Task.from_yaml(PIPELINE_DIR / {literal(spec.task)})
input_path, output_path = sys.argv[1], sys.argv[2]
run_dir = sys.argv[3] if len(sys.argv) > 3 else output_path + ".run"
annotator = Annotator(
    task,
    run_dir=run_dir,
{arguments}
)
result = annotator.annotate(input_path, seed={seed}, output=output_path)
print(result.summary.counts)
'''
