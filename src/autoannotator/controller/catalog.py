"""The model catalog: candidate specialists from the curated list, the Hub, and the user's own folders."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autoannotator.errors import AnnotatorError
from autoannotator.task import format_validation_error


class CatalogEntry(BaseModel):
    """One candidate specialist and what is known about it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    kind: str
    description: str
    family: str = ""
    task_type: str = "any"
    language: str = "en"
    labels: list[str] = Field(default_factory=list, description="the model's own labels, in id order")
    label_aliases: dict[str, str] = Field(default_factory=dict, description="what terse labels mean (NEG -> negative)")
    parameters: str = "?"
    license: str = "unknown"
    source: str = "curated"
    offline: bool = False
    trainable: bool = False
    path: str | None = None
    downloads: int | None = None

    @property
    def model(self) -> str | None:
        """What the hf kind loads: a local folder or a hub id; None for the packaged defaults."""
        if self.kind != "hf" or self.id == "hf-minilm-finetuned":
            return None
        return self.path or self.id


def curated_catalog() -> list[CatalogEntry]:
    """The catalog shipped with the package: the paper's Table 2 models and what works offline here."""
    raw = yaml.safe_load(resources.files("autoannotator.controller").joinpath("catalog.yaml").read_text(encoding="utf-8"))
    return [CatalogEntry.model_validate(entry) for entry in raw]


def entry_from_folder(folder: Path) -> CatalogEntry:
    """A user's Hugging Face classifier folder: labels from config.json, description from its README."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise AnnotatorError(f"{folder}: not a Hugging Face model folder (no config.json)")
    config = json.loads(config_path.read_text(encoding="utf-8-sig"))
    id2label = config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    readme = folder / "README.md"
    description = first_paragraph(readme.read_text(encoding="utf-8-sig")) if readme.is_file() else ""
    return CatalogEntry(
        id=folder.name, kind="hf", family=config.get("model_type", ""), labels=labels, source="user", offline=True,
        description=description or f"{config.get('model_type', 'transformer')} classifier with labels {', '.join(labels)}",
        path=str(folder),
    )  # fmt: skip


def user_catalog(directory: Path) -> list[CatalogEntry]:
    """Model folders under `directory`, plus a catalog.yaml there if present."""
    entries = [entry_from_folder(p) for p in sorted(directory.iterdir()) if (p / "config.json").is_file()]
    extra = directory / "catalog.yaml"
    if extra.is_file():
        try:
            entries += [CatalogEntry.model_validate(e | {"source": "user"}) for e in yaml.safe_load(extra.read_text(encoding="utf-8-sig")) or []]
        except ValidationError as exc:
            raise AnnotatorError(f"{extra}: {format_validation_error(exc)}") from None
    return entries


def first_paragraph(markdown: str) -> str:
    """The first prose paragraph of a model card (front matter, headings and badges skipped)."""
    if markdown.startswith("---"):
        markdown = markdown.split("---", 2)[-1]
    for block in markdown.split("\n\n"):
        block = block.strip()
        if block and not block.startswith(("#", "!", "[", "<", "|", "```", "-")):
            return " ".join(block.split())[:500]
    return ""
