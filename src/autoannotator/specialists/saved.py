"""A specialist saved elsewhere (trained on other data, another label set), used on this task through a label map."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoannotator.errors import AnnotatorError
from autoannotator.specialists.base import MANIFEST, LabelMapping, Specialist, load_specialist, register
from autoannotator.task import Task

INNER = "inner"


def read_manifest(folder: Path) -> dict:
    """A saved specialist's specialist.json (kind, labels, options)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise AnnotatorError(f"{folder}: not a saved specialist (no {MANIFEST})")
    return json.loads(manifest_path.read_text(encoding="utf-8-sig"))


def source_task(folder: Path) -> Task:
    """The label set a saved specialist was trained with, as a task."""
    return Task.from_dict({"name": f"source of {folder.name}", "labels": read_manifest(folder)["labels"]})


def wraps_remote_code(folder: Path) -> bool:
    """Whether the saved specialist in `folder`, or any saved one it wraps, asks for trust_remote_code."""
    manifest = read_manifest(folder)
    if manifest.get("options", {}).get("trust_remote_code"):
        return True
    return manifest.get("kind") == "saved" and (folder / INNER).is_dir() and wraps_remote_code(folder / INNER)


@register("saved")
class SavedSpecialist(Specialist):
    """Wraps a saved specialist of any kind; its labels map onto the task's (explicit map, else name or alias)."""

    trainable = False
    needs_training = False

    def __init__(self, task: Task, *, path: str, label_map: dict[str, str | None] | None = None) -> None:
        super().__init__(task, path=path, label_map=label_map)
        self._inner: Specialist | None = None
        self.mapping: LabelMapping | None = None
        if Path(path).exists():  # else a run directory's own copy is attached by _load_weights
            self._attach(Path(path))

    def _attach(self, folder: Path) -> None:
        source = source_task(folder)
        self.mapping = LabelMapping(source.label_names, self.task, self.options["label_map"])
        self._folder = folder
        self.trained_on = frozenset(read_manifest(folder).get("trained_on", ()))  # what the wrapped specialist was trained on

    def requests_remote_code(self) -> bool:
        """The wrapped folder's specialist.json may ask for trust_remote_code: it needs the same permission."""
        return super().requests_remote_code() or (self.mapping is not None and wraps_remote_code(self._folder))

    @property
    def inner(self) -> Specialist:
        if self.mapping is None:
            raise AnnotatorError(f"saved specialist not found: {self.options['path']}")
        if self._inner is None:
            self._inner = load_specialist(self._folder, source_task(self._folder), allow_remote_code=self.allow_remote_code)
        return self._inner

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> SavedSpecialist:
        """A saved specialist is used as it is."""
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.mapping.apply(self.inner.predict_proba(texts))

    def _save_weights(self, folder: Path) -> None:
        target = folder / INNER
        if target.resolve() != self._folder.resolve():
            shutil.copytree(self._folder, target, dirs_exist_ok=True)

    def _load_weights(self, folder: Path) -> None:
        self._inner = None
        self._attach(folder / INNER)
