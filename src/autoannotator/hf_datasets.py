"""Hugging Face `datasets` in and out: a folder written by `Dataset.save_to_disk` (or a `DatasetDict`, one
split of it) as input, the labeled table as such a folder, and a push to the Hub with a dataset card.

Types survive the round trip: the input's features are kept on the frame (`frame.attrs["features"]`) and
given back on writing, so an `int32` stays `int32`, a `Sequence` a `Sequence`, and a `ClassLabel` a
`ClassLabel` (read as its label names, so gold columns and seeds hold the task's label names, and cast back
to the class ids on writing). The output columns get plain types (strings, `uncertainty` float64)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from autoannotator.errors import AnnotatorError
from autoannotator.mixed_columns import as_text_column, type_names

FEATURES = "features"  # the frame.attrs key that carries the input's features (Features.to_dict())
OUTPUT_TYPES = {"uncertainty": "float64"}  # output columns that are not strings


def is_dataset_folder(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return path.is_dir() and any((path / name).is_file() for name in ("state.json", "dataset_dict.json"))


def read_dataset(path: Path, *, split: str | None = None) -> pd.DataFrame:
    """The rows of a saved Dataset (or of `split` of a saved DatasetDict) as a DataFrame whose ClassLabel
    columns hold label names; the features ride along in `frame.attrs["features"]`. Raises AnnotatorError
    for a folder that is not a saved dataset, a missing or unknown split, or no rows."""
    from datasets import ClassLabel, Dataset, DatasetDict, load_from_disk

    if not is_dataset_folder(path):
        raise AnnotatorError(f"{path}: a folder, but not one written by Dataset.save_to_disk (no state.json or dataset_dict.json)")
    try:
        loaded = load_from_disk(str(path))
    except (OSError, ValueError) as exc:
        raise AnnotatorError(f"{path}: cannot be read as a saved dataset: {str(exc).splitlines()[0]}") from None
    if isinstance(loaded, DatasetDict):
        splits = list(loaded)
        if split is None and len(splits) != 1:
            raise AnnotatorError(f"{path}: a DatasetDict with splits {splits}: name one with --split")
        split = split if split is not None else splits[0]
        if split not in loaded:
            raise AnnotatorError(f"{path}: no split '{split}'; the splits are {splits}")
        loaded = loaded[split]
    elif split is not None:
        raise AnnotatorError(f"{path}: a single Dataset, not a DatasetDict: --split '{split}' does not apply")
    assert isinstance(loaded, Dataset)
    if loaded.num_rows == 0:
        raise AnnotatorError(f"{path}: the dataset has no rows")
    frame = loaded.to_pandas()
    for name, feature in loaded.features.items():
        if isinstance(feature, ClassLabel):
            frame[name] = [None if pd.isna(v) or v < 0 else feature.int2str(int(v)) for v in frame[name]]
    frame.attrs[FEATURES] = loaded.features.to_dict()
    return frame


def to_dataset(frame: pd.DataFrame) -> Any:
    """The frame as a `datasets.Dataset`: input columns with the features they were read with, output
    columns as strings (`uncertainty` float64); an untyped column of mixed types as text (`mixed_columns`).
    Raises AnnotatorError where a column cannot take its type."""
    from datasets import Dataset, Features, Value

    known = Features.from_dict(frame.attrs[FEATURES]) if FEATURES in frame.attrs else Features()
    features = Features({c: known[c] if c in known else Value(OUTPUT_TYPES.get(c, "string")) for c in frame.columns})
    for column in frame.columns:
        if features[column] == Value("string") and len(type_names(frame[column].tolist())) > 1:
            frame = as_text_column(frame, column, target="the datasets folder")
    columns = {c: [_plain(v) for v in frame[c].tolist()] for c in frame.columns}
    try:
        return Dataset.from_dict(columns, features=features)
    except (TypeError, ValueError) as exc:
        raise AnnotatorError(f"cannot build the output dataset with the input's features: {str(exc).splitlines()[0]}") from None


def _plain(value: Any) -> Any:
    """A value as `datasets` takes it: numpy arrays (lists read by `to_pandas`) as lists, NaN as None."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        return value.tolist()
    if isinstance(value, float) and value != value:
        return None
    return value


def write_dataset(frame: pd.DataFrame, path: Path) -> Path:
    """Save the frame with `save_to_disk` into a fresh folder beside `path`, then put it in place of `path`
    (an earlier output there is replaced only once the new one is complete)."""
    dataset = to_dataset(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        dataset.save_to_disk(str(fresh))
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(fresh, path)
            shutil.rmtree(old)
        else:
            os.replace(fresh, path)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh)
    return path


def dataset_card(*, task: Any, specialists: list[str], reviewer: str, counts: dict[str, int], llm: dict[str, dict[str, float]],
                 repo: str | None = None) -> str:  # fmt: skip
    """A dataset card (README.md with YAML metadata) for a labeled dataset: the task and its labels, the
    specialists, the routes and their shares, the reviewer, and the LLM calls, tokens and $ of the run."""
    import yaml

    total = sum(counts.values()) or 1
    metadata = {"task_categories": ["text-classification"], "tags": ["autoannotator"], "pretty_name": task.name}
    routes = "\n".join(f"| {name} | {n} | {n / total:.1%} |" for name, n in counts.items())
    labels = "\n".join(f"- `{label.name}`: {label.description}" for label in task.labels)
    usage = "\n".join(
        f"| {model} | {int(u['calls'])} | {int(u['cache_hits'])} | {int(u['prompt_tokens']):,} | {int(u['completion_tokens']):,} | {u['cost_usd']:.4f} |"
        for model, u in llm.items()
    ) or "| (none) | 0 | 0 | 0 | 0 | 0 |"  # fmt: skip
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False).strip()}
---

# {repo or task.name}

Labeled with AutoAnnotator: a pool of small specialist models votes on every item,
and the items they disagree on go to a reviewer. Each row keeps its provenance: `label_source` (the route),
`votes` (each specialist's label and probability), `uncertainty`, `reviewed_label`, `consensus_label` and,
for unresolved items, `reason`.

## Task

{task.instruction}

{labels}

## How it was labeled

- specialists: {", ".join(specialists) or "none"}
- reviewer: {reviewer}

| route (label_source) | items | share |
|---|---|---|
{routes}

## LLM cost

| model | calls | cache hits | prompt tokens | completion tokens | USD |
|---|---|---|---|---|---|
{usage}
"""


def push_to_hub(frame: pd.DataFrame, repo: str, card: str, *, token_env: str = "HF_TOKEN") -> None:
    """Push the labeled dataset and its card to the Hub repo `repo` (the token from the environment variable
    `token_env`, never stored). The card's text replaces the one `push_to_hub` writes, and its metadata is
    added to that card's (which describes the data files). Raises AnnotatorError when the Hub refuses or
    cannot be reached."""
    from huggingface_hub import DatasetCard
    from huggingface_hub.errors import HfHubHTTPError

    token = os.environ.get(token_env) or None
    ours = DatasetCard(card)
    try:
        to_dataset(frame).push_to_hub(repo, token=token)
        pushed = DatasetCard.load(repo, repo_type="dataset", token=token)
        pushed.data.update(ours.data.to_dict())
        pushed.text = ours.text
        pushed.push_to_hub(repo, repo_type="dataset", token=token)
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise AnnotatorError(f"push to the Hub repo '{repo}' failed: {str(exc).splitlines()[0]}") from None
