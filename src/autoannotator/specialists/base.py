"""The specialist protocol, the registry of kinds, and mapping a model's own labels onto the task's."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from autoannotator.errors import AnnotatorError
from autoannotator.items import normalized_text
from autoannotator.task import Example, Task, normalize_label_name

MANIFEST = "specialist.json"
_REGISTRY: dict[str, type[Specialist]] = {}


class Specialist(ABC):
    """A small classifier: `predict_proba` returns an (n, n_labels) array in the task's label order."""

    kind: ClassVar[str]
    trainable: ClassVar[bool] = True
    needs_training: ClassVar[bool] = True
    refits_from_scratch: ClassVar[bool] = True  # refinement retrains on all labeled data, not just the new pool
    allow_remote_code: bool = False  # the caller's decision, set by create_specialist; never read from a file

    trained_on: frozenset[str] = frozenset()  # `text_digests` of every text it was fitted or updated on (kept in specialist.json)

    def __init__(self, task: Task, **options: Any) -> None:
        self.task = task
        self.options = options

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every kind's own `fit` and `update` also record what they were trained on (`trained_on`), so a run can
        tell a specialist that has seen its seed (its seed predictions are not out-of-sample) from one that has not."""
        super().__init_subclass__(**kwargs)
        for name, keep in (("fit", False), ("update", True)):
            if name in cls.__dict__ and cls.trainable:
                setattr(cls, name, _recording(cls.__dict__[name], keep=keep))

    def requests_remote_code(self) -> bool:
        """Whether loading this specialist would run code shipped with a model (`trust_remote_code`)."""
        return bool(self.options.get("trust_remote_code"))

    @abstractmethod
    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Specialist:
        """Train on texts with task label names; return self."""

    def update(self, texts: Sequence[str], labels: Sequence[str]) -> Specialist:
        """Learn from more labeled data (a refinement round); by default a fresh fit on what it is given."""
        return self.fit(texts, labels)

    def refined(self, texts: Sequence[str], labels: Sequence[str], folder: Path) -> Specialist:
        """A new version, saved in `folder`: a copy of this one updated on the data. This one is unchanged."""
        self.save(folder)
        candidate = load_specialist(folder, self.task, allow_remote_code=self.allow_remote_code).update(texts, labels)
        candidate.save(folder)
        return candidate

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, n_labels) probabilities in task label order; an all-zero row means abstain."""

    def cross_val_proba(
        self, texts: Sequence[str], labels: Sequence[str], folds: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> np.ndarray:
        """(n, n_labels) out-of-fold probabilities: for each (train, held-out) index pair a fresh copy of this
        specialist (same kind and `fold_options`) is fitted on the train items and predicts the held-out ones.
        This specialist itself is left as it is."""
        texts, labels = list(texts), list(labels)
        probs = np.zeros((len(texts), self.n_labels))
        for train, held_out in folds:
            copy = create_specialist(self.kind, self.task, allow_remote_code=self.allow_remote_code, **self.fold_options())
            copy.fit([texts[i] for i in train], [labels[i] for i in train])
            probs[held_out] = copy.predict_proba([texts[i] for i in held_out])
        return probs

    def fold_options(self) -> dict[str, Any]:
        """Options for the per-fold copies in `cross_val_proba`; kinds that tuned a hyperparameter on the whole
        seed fix it here so each fold is not tuned again."""
        return dict(self.options)

    def predict_with_details(self, texts: Sequence[str]) -> tuple[np.ndarray, list[dict]]:
        """`predict_proba` plus one dict per item for the item's provenance (LLM specialists: their answer, or why
        they abstained); empty dicts by default."""
        return self.predict_proba(texts), [{} for _ in texts]

    def use_examples(self, examples: Sequence[Example]) -> None:
        """Labeled examples (from the seed file) for kinds that prompt with them (LLM specialists); ignored by default."""

    def attach(self, store: Any, name: str) -> None:
        """Called by the run loop with the run store and the specialist's name in the pool before it scores;
        kinds that cache or account there (LLM specialists) keep them."""

    @abstractmethod
    def _save_weights(self, folder: Path) -> None:
        """Write this kind's own files (never pickles) into `folder`."""

    @abstractmethod
    def _load_weights(self, folder: Path) -> None:
        """Read back what `_save_weights` wrote."""

    def save(self, folder: str | Path) -> Path:
        """Save to a folder: a JSON manifest plus the kind's weight files."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_weights(folder)
        manifest = {"kind": self.kind, "labels": self.task.label_names, "options": self.options}
        if self.trained_on:
            manifest["trained_on"] = sorted(self.trained_on)
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        return folder

    @property
    def n_labels(self) -> int:
        return len(self.task.labels)

    def label_indices(self, labels: Sequence[str]) -> np.ndarray:
        """Task label names to indices; a name outside the task is a clear error."""
        index = {name: i for i, name in enumerate(self.task.label_names)}
        try:
            return np.array([index[self.task.resolve_label(label) or str(label)] for label in labels], dtype=np.int64)
        except KeyError as exc:
            raise AnnotatorError(f"training label {exc} is not one of the task labels {self.task.label_names}") from None


def text_digests(texts: Sequence[str]) -> frozenset[str]:
    """A short digest (BLAKE2b, 8 bytes, hex) of each text's `items.normalized_text` (a seed reformatted is the same
    seed to a model): what `trained_on` keeps instead of the texts."""
    return frozenset(hashlib.blake2b(normalized_text(t).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest() for t in texts)


def _recording(method: Callable[..., Specialist], *, keep: bool) -> Callable[..., Specialist]:
    """`method` (a kind's fit or update) that also records its texts in `trained_on` (update: added to what it had)."""

    @functools.wraps(method)
    def recorded(self: Specialist, texts: Sequence[str], labels: Sequence[str], *args: Any, **kwargs: Any) -> Specialist:
        before = self.trained_on if keep else frozenset()
        result = method(self, texts, labels, *args, **kwargs)
        self.trained_on = before | text_digests(texts)
        return result

    return recorded


def register(kind: str) -> Callable[[type[Specialist]], type[Specialist]]:
    """Class decorator that registers a specialist kind under `kind`."""

    def wrap(cls: type[Specialist]) -> type[Specialist]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return wrap


def registered_kinds() -> list[str]:
    _import_builtin_kinds()
    return sorted(_REGISTRY)


def specialist_class(kind: str) -> type[Specialist]:
    """The class registered as `kind`, or a clear error listing the known kinds."""
    _import_builtin_kinds()
    if kind not in _REGISTRY:
        raise AnnotatorError(f"unknown specialist kind '{kind}' (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[kind]


@functools.cache
def options_model(cls: type[Specialist]) -> type[BaseModel]:
    """A pydantic model of the keyword options a specialist kind's __init__ takes (types and defaults)."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True)  # keep Annotated constraints
    fields = {
        name: (hints.get(name, Any), ... if p.default is inspect.Parameter.empty else p.default)
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return create_model(f"{cls.__name__}Options", __config__=ConfigDict(extra="forbid", coerce_numbers_to_str=True), **fields)


def create_specialist(kind: str, task: Task, *, allow_remote_code: bool = False, **options: Any) -> Specialist:
    """A new, untrained specialist of `kind` for `task`; unknown options and wrong types are clear errors.

    `allow_remote_code` is the caller's one decision (the command line's `--trust-remote-code`) for every
    model this specialist loads, its own and any it wraps. Raises AnnotatorError when the specialist asks
    for `trust_remote_code` (in its options or, for `saved`, in the wrapped folder's specialist.json) and
    the caller did not allow it.
    """
    cls = specialist_class(kind)
    try:
        checked = options_model(cls).model_validate(options)
    except ValidationError as exc:
        err = exc.errors()[0]
        option = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise AnnotatorError(f"specialist '{kind}' has no option '{option}'") from None
        raise AnnotatorError(f"specialist '{kind}' option '{option}': {err['msg']}") from None
    specialist = cls(task, **{k: getattr(checked, k) for k in options})
    specialist.allow_remote_code = allow_remote_code
    check_remote_code(specialist, kind)
    return specialist


def check_remote_code(specialist: Specialist, name: str) -> None:
    """Refuse a specialist that would run a model's own code without the caller's permission."""
    if specialist.requests_remote_code() and not specialist.allow_remote_code:
        raise AnnotatorError(f"specialist '{name}' asks for trust_remote_code: run with --trust-remote-code to allow it")


def load_specialist(folder: str | Path, task: Task, *, allow_remote_code: bool = False) -> Specialist:
    """Load a saved specialist; its label set must be the task's. `trust_remote_code` in its manifest
    is refused unless the caller allows it (see `create_specialist`)."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise AnnotatorError(f"{folder}: not a saved specialist (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8-sig"))
    if manifest["labels"] != task.label_names:
        raise AnnotatorError(f"{folder}: saved for labels {manifest['labels']}, the task has {task.label_names}")
    specialist = create_specialist(manifest["kind"], task, allow_remote_code=allow_remote_code, **manifest.get("options", {}))
    specialist._load_weights(folder)
    if manifest.get("trained_on"):
        specialist.trained_on = frozenset(manifest["trained_on"])
    check_remote_code(specialist, manifest["kind"])  # what the loaded weights wrap may ask too
    return specialist


def _import_builtin_kinds() -> None:
    from autoannotator.specialists import embedding, hf, lexicon, llm, saved, tfidf  # noqa: F401


class LabelMapping:
    """A matrix that turns a model's own label distribution into the task's.

    Each model label maps to one task label, by the explicit `label_map` (a value of None drops
    that label) or else by name or alias. A model label that maps to nothing is refused: labels are
    never matched by position.

    Abstention: on an item where the model's own top label (its argmax, first on ties) maps to None,
    the model abstains (an all-zero row: no vote, left out of the mean probabilities). Elsewhere its
    distribution is summed onto the task labels and renormalised over the mapped mass.
    """

    def __init__(self, model_labels: Sequence[str], task: Task, label_map: dict[str, str | None] | None = None) -> None:
        self.model_labels = list(model_labels)
        explicit = {normalize_label_name(k): v for k, v in (label_map or {}).items()}
        self.matrix = np.zeros((len(self.model_labels), len(task.labels)))
        unmapped = []
        for i, model_label in enumerate(self.model_labels):
            key = normalize_label_name(model_label)
            if key in explicit:
                target = explicit[key]
                if target is None:
                    continue
                resolved = task.resolve_label(target)
                if resolved is None:
                    raise AnnotatorError(f"label_map sends '{model_label}' to '{target}', which is not a task label {task.label_names}")
            else:
                resolved = task.resolve_label(model_label)
            if resolved is None:
                unmapped.append(model_label)
                continue
            self.matrix[i, task.label_names.index(resolved)] = 1.0
        if unmapped:
            raise AnnotatorError(
                f"model labels {unmapped} match no task label {task.label_names}: "
                "give a label_map (model label -> task label, or null to ignore it) or add aliases to the task"
            )
        if np.count_nonzero(self.matrix.sum(axis=0)) < 2:
            raise AnnotatorError(f"model labels {self.model_labels} cover fewer than two task labels {task.label_names}")

    def apply(self, model_probs: np.ndarray) -> np.ndarray:
        """(n, n_model_labels) model probabilities -> (n, n_task_labels) task distribution, renormalised;
        all-zero rows where the model abstains (its top label maps to None, or no mass is mapped)."""
        task_probs = model_probs @ self.matrix
        total = task_probs.sum(axis=1, keepdims=True)
        mapped_top = self.matrix[model_probs.argmax(axis=1)].any(axis=1, keepdims=True)
        return np.divide(task_probs, total, out=np.zeros_like(task_probs), where=(total > 1e-9) & mapped_top)
