"""The pipeline file: the generated "program" of a run, as validated data. `plan` writes it, `run` executes it,
`--export-script` turns it into a standalone Python script on the public API. What an LLM contributes
(profiles, label maps) ends up as data checked here, never as code that is executed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autoannotator.errors import AnnotatorError
from autoannotator.refine import RefineSettings
from autoannotator.specialists import create_specialist
from autoannotator.task import SpecialistSpec, Task, format_validation_error

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
NOT_YAML = re.compile("[^\x09\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # YAML 1.1's printable set


class ConsensusSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: Literal["vote", "margin", "entropy", "learned"] = "vote"
    epsilon: float | None = Field(None, ge=0, le=1)
    budget: float | None = Field(None, ge=0, le=1)
    target_accuracy: float | None = Field(None, gt=0, lt=1)
    confidence: float | None = Field(None, gt=0, lt=1)  # with target_accuracy only (default 0.9)
    audit: float | None = Field(None, ge=0, le=1)


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
    task: str | dict[str, Any] = Field(description="task YAML, relative to this file, or the task itself")
    specialists: list[SpecialistSpec] = Field(min_length=1)
    consensus: ConsensusSpec = Field(default_factory=ConsensusSpec)
    reviewer: ReviewerSpec = Field(default_factory=ReviewerSpec)
    refine: RefineSettings | None = None
    seed: str | None = Field(None, description="labeled seed file, relative to this file")
    seed_label_column: str = "label"
    chunk_size: int = Field(512, ge=1)
    random_seed: int | None = Field(None, ge=0, description="the run's random seed (default: the task file's, else 0)")


def _inside(base: Path, relative: str, what: str, allowed: Sequence[Path] = ()) -> Path:
    """`relative` resolved under `base`; absolute paths and paths that climb out are refused unless they
    lie inside one of the `allowed` folders (the command line's `--allow-dir`)."""
    path = (base / relative).resolve()
    if any(path.is_relative_to(Path(folder).resolve()) for folder in allowed):
        return path
    if Path(relative).is_absolute():
        raise AnnotatorError(f"{what} '{relative}' is an absolute path: pipeline files use paths relative to themselves")
    if not path.is_relative_to(base.resolve()):
        raise AnnotatorError(f"{what} '{relative}' points outside the pipeline's folder (allow its folder with --allow-dir)")
    return path


def load_pipeline(
    path: str | Path, *, allow_remote_code: bool = False, allow_dirs: Sequence[Path] = ()
) -> tuple[PipelineSpec, Task, Path]:
    """Read and check a pipeline file: schema, registered kinds and their options, label maps, paths.

    Every local path (task, seed, `model`/`encoder` folders, `saved` specialists' `path`) must lie in the
    pipeline's folder or in one of `allow_dirs`; `trust_remote_code` anywhere (the file or a saved folder's
    specialist.json) needs `allow_remote_code`. Returns (spec, task, the folder its relative paths start
    from); raises AnnotatorError (one line) on the first problem."""
    path = Path(path)
    if not path.is_file():
        raise AnnotatorError(f"pipeline file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as exc:
        raise AnnotatorError(f"{path}: not valid YAML (or not plain data): {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise AnnotatorError(f"{path}: a pipeline file is a mapping (task, specialists, ...)")
    try:
        spec = PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        raise AnnotatorError(f"{path}: {format_validation_error(exc)}") from None
    base = path.parent
    if isinstance(spec.task, dict):
        task = Task.from_dict(spec.task, source=f"{path}: task")
    else:
        task = Task.from_yaml(_inside(base, spec.task, "task", allow_dirs))
    if spec.seed is not None:
        _inside(base, spec.seed, "seed", allow_dirs)
    for specialist in spec.specialists:
        options = specialist.options
        for key in ("model", "encoder", "path"):
            value = options.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise AnnotatorError(f"specialist '{specialist.display_name}': {key} must be a string")
            if specialist.kind == "llm" and key == "model" and (options.get("base_url") or not value.endswith(".gguf")):
                continue  # a served model's name, or an embedded model's name: not a path
            local = base / value
            if key != "path" and not Path(value).is_absolute() and HUB_ID.match(value) and not local.exists():
                continue  # a Hub model id
            options[key] = str(_inside(base, value, f"{specialist.display_name}.{key}", allow_dirs))
        # unknown kinds, unknown options, bad label maps, trust_remote_code without permission
        create_specialist(specialist.kind, task, allow_remote_code=allow_remote_code, **options)
    return spec, task, base


def annotator_kwargs(spec: PipelineSpec) -> dict[str, Any]:
    """The Annotator arguments a pipeline spec stands for (besides task and run_dir)."""
    return {
        "specialists": spec.specialists, "reviewer": spec.reviewer.spec, "reviewer_options": spec.reviewer.options,
        "rule": spec.consensus.rule, "epsilon": spec.consensus.epsilon, "budget": spec.consensus.budget,
        "target_accuracy": spec.consensus.target_accuracy, "confidence": spec.consensus.confidence, "audit": spec.consensus.audit,
        "chunk_size": spec.chunk_size, "seed_label_column": spec.seed_label_column, "refine": spec.refine,
        "random_seed": spec.random_seed,
    }  # fmt: skip


def comment(text: str, indent: str = "") -> list[str]:
    """`text` as YAML comment lines: every line of it commented, whatever line break it uses (str.splitlines
    splits on every break YAML knows, \\r, \\x85 and \\u2028 included), so no part of it becomes a key;
    characters YAML refuses anywhere in a file (control characters, lone surrogates) become U+FFFD."""
    return [f"{indent}# {NOT_YAML.sub(chr(0xFFFD), line)}".rstrip() for line in (text.splitlines() or [""])]


def render_pipeline(spec: PipelineSpec, comments: dict[str, str], header: list[str]) -> str:
    """The pipeline as YAML with a comment on each choice (`comments` keyed by specialist name and section).
    Comments may hold any text (an LLM-written task profile): they never change the data."""
    data = spec.model_dump(mode="json", exclude_none=True)
    lines = [line for entry in header for line in comment(entry)] + [""]
    dump = lambda value: yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip("\n").split("\n")  # noqa: E731
    for key, value in data.items():
        if key in comments:
            lines += comment(comments[key])
        if key == "specialists":
            lines.append("specialists:")
            for item in value:
                name = item.get("name") or item["kind"]
                if name in comments:
                    lines += comment(comments[name], "  ")
                lines += [f"  {line}" for line in dump([item])]
        else:
            lines += dump({key: value})
    return "\n".join(lines) + "\n"


def write_pipeline(path: Path, text: str) -> None:
    """Write a pipeline file only once it passes `load_pipeline`: the text goes to a temporary file beside
    `path` (so relative paths resolve the same), is checked, then renamed over `path` (atomic on POSIX).
    A file that fails the check raises AnnotatorError and leaves `path` as it was."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        load_pipeline(temporary)  # plan never writes trust_remote_code: the file must pass without it
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def export_script(spec: PipelineSpec, pipeline_dir: Path, script_dir: Path) -> str:
    """A standalone Python script on the public API that reproduces the run. Every value is written as a
    JSON literal of validated data."""
    kwargs = annotator_kwargs(spec)
    kwargs["specialists"] = [s.model_dump(mode="json", exclude_none=True) for s in spec.specialists]
    kwargs["refine"] = spec.refine.model_dump(mode="json") if spec.refine else None
    literal = lambda v: repr(json.loads(json.dumps(v)))  # noqa: E731 - plain data only
    arguments = "\n".join(f"    {k}={literal(v)}," for k, v in kwargs.items())
    seed = f"PIPELINE_DIR / {literal(spec.seed)}" if spec.seed else "None"
    task = f"Task.from_dict({literal(spec.task)})" if isinstance(spec.task, dict) else f"Task.from_yaml(PIPELINE_DIR / {literal(spec.task)})"
    relative = os.path.relpath(pipeline_dir.resolve(), script_dir.resolve())
    return f'''"""Reproduces the run described by the pipeline file (generated by `autoannotator plan --export-script`).

    python {{this file}} INPUT OUTPUT [RUN_DIR]
"""

import sys
from pathlib import Path

from autoannotator import Annotator, Task

PIPELINE_DIR = (Path(__file__).resolve().parent / {literal(relative)}).resolve()
task = {task}
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
