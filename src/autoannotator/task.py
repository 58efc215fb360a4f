"""The task spec: what to label and with which labels, loaded from one YAML file."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from autoannotator.choices import LETTERS
from autoannotator.errors import AnnotatorError


def label_text(value: object) -> str | None:
    """A label value as text. Labels are strings everywhere: a number read from YAML, CSV, JSON, Parquet
    or an LLM's JSON answer is its string form (1, 1.0 and numpy's 1 all read "1"; 0.5 reads "0.5").
    None for a missing value (None, NaN) and for what is no label at all (booleans, lists, mappings)."""
    if value is None or isinstance(value, bool | list | dict):
        return None
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, str | numbers.Number):
        return str(value)
    return None


def numeric_text(value: object) -> object:
    """A string that reads as a finite number -> that number ("1.0" -> 1.0, "1" -> 1.0), so it names the label
    its number names; anything else -> None."""
    if not isinstance(value, str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _label_field(value: object) -> object:
    """Before-validator of label names in the task file: numbers become text; a YAML boolean is refused."""
    if isinstance(value, bool):
        raise ValueError(f"{value} is a YAML boolean, not a label: quote it (e.g. 'yes')")
    return label_text(value) if isinstance(value, numbers.Number) else value


LabelText = Annotated[str, BeforeValidator(_label_field)]


def normalize_label_name(name: object) -> str:
    """The form in which label names and aliases are compared: trimmed, lower-case, single spaces."""
    return " ".join((label_text(name) or "").strip().lower().replace("_", " ").split())


class Label(BaseModel):
    """One label of the task."""

    model_config = ConfigDict(extra="forbid")

    name: LabelText = Field(min_length=1)
    description: str = ""
    aliases: list[LabelText] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("label name is empty")
        return value


class Example(BaseModel):
    """A labeled example for few-shot prompts."""

    model_config = ConfigDict(extra="forbid")

    text: str
    label: LabelText
    rationale: str | None = Field(None, description="worked reasoning, shown in chain-of-thought few-shot prompts")


class SpecialistSpec(BaseModel):
    """A specialist named in the task file: its registered kind, a unique name and its options."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.name or self.kind


TaskType = Literal["classification", "multiple_choice"]


class Task(BaseModel):
    """An annotation task: instruction, labels and where the text lives in the input.

    `type: classification` (the default) labels the text column with one of `labels`. `type: multiple_choice`
    reads a question column and an options column (a list, or an `A) … B) …` string); the labels are the
    option letters (A–E unless given) and an item whose options cannot be parsed stays unresolved.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    type: TaskType = "classification"
    instruction: str = ""
    labels: list[Label]
    text_column: str = "text"
    question_column: str = "question"
    options_column: str = "options"
    rationale_column: str = "rationale"  # multiple choice: a seed file's worked solutions, shown in cot few-shot prompts
    id_column: str | None = None
    examples: list[Example] = Field(default_factory=list)
    specialists: list[SpecialistSpec] = Field(default_factory=list)
    random_seed: int = Field(0, ge=0, description="fixes every random choice of a run (head initialisation, data order, samples)")

    @model_validator(mode="after")
    def _check_labels(self) -> Task:
        if not self.labels:
            raise ValueError("the task has no labels: list at least two under 'labels'")
        seen: dict[str, str] = {}
        for label in self.labels:
            for spelling in [label.name, *label.aliases]:
                key = normalize_label_name(spelling)
                if key in seen and seen[key] != label.name:
                    raise ValueError(f"'{spelling}' names two labels ('{seen[key]}' and '{label.name}')")
                if key in seen and spelling == label.name:
                    raise ValueError(f"duplicate label '{label.name}'")
                seen[key] = label.name
        if len(self.labels) < 2:
            raise ValueError("the task needs at least two labels")
        if self.type == "multiple_choice" and self.label_names != list(LETTERS[: len(self.labels)]):
            raise ValueError(f"a multiple_choice task's labels are the option letters A, B, C, … in order, got {self.label_names}")
        for example in self.examples:
            if self.resolve_label(example.label) is None:
                raise ValueError(f"example label '{example.label}' is not one of the task labels {self.label_names}")
        return self

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def resolve_label(self, value: object) -> str | None:
        """The task label that `value` names exactly or by alias (case-insensitive; a number by its string
        form, see `label_text`; a numeric string such as "1.0" read from CSV names the label its number does,
        "1"), else None."""
        if label_text(value) is None:
            return None
        keys = [normalize_label_name(value), normalize_label_name(numeric_text(value))]
        for key in keys:
            for label in self.labels:
                if key and key in {normalize_label_name(s) for s in [label.name, *label.aliases]}:
                    return label.name
        return None

    @classmethod
    def from_yaml(cls, path: str | Path) -> Task:
        """Load and validate a task file; every problem becomes one AnnotatorError line."""
        path = Path(path)
        if not path.is_file():
            raise AnnotatorError(f"task file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise AnnotatorError(f"task file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise AnnotatorError(f"task file {path} must hold a mapping with 'name' and 'labels'")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "task") -> Task:
        """Validate a task given as a dict (labels may be a list of names or of mappings)."""
        data = dict(data)
        if data.get("type") == "multiple_choice" and data.get("labels") is None:
            data["labels"] = list(LETTERS[:5])
        labels = data.get("labels")
        if isinstance(labels, dict):
            data["labels"] = [{"name": k, "description": v or ""} for k, v in labels.items()]
        elif isinstance(labels, list):
            data["labels"] = [v if isinstance(v, dict) else {"name": v} for v in labels]
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise AnnotatorError(f"{source}: {format_validation_error(exc)}") from None


def format_validation_error(exc: ValidationError) -> str:
    """The first pydantic error as 'field.path: message'."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where + ': ' if where else ''}{message}{more}"
