"""Read and write tables (CSV, JSONL, Parquet, Hugging Face datasets folders) with clear errors, and write outputs atomically."""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.hf_datasets import FEATURES, read_dataset, write_dataset

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path) -> str:
    """The format named by the file's suffix ('dataset' for a folder or a path without suffix: a Hugging Face
    datasets folder), or a clear error."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        return "dataset"
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise AnnotatorError(f"{path}: unsupported file type '{suffix}' (use .csv, .jsonl, .parquet, or a datasets folder)")
    return FORMATS[suffix]


def read_table(path: str | Path, *, split: str | None = None) -> pd.DataFrame:
    """Read a CSV, JSONL or Parquet file as strings-preserving DataFrame, or a folder written by the Hugging
    Face `save_to_disk` (`split`: which split of a DatasetDict); raise AnnotatorError on bad input."""
    path = Path(path)
    fmt = table_format(path)
    if fmt == "dataset":
        if not path.exists():
            raise AnnotatorError(f"input not found: {path}")
        return read_dataset(path, split=split)
    if split is not None:
        raise AnnotatorError(f"{path}: --split applies to a Hugging Face datasets folder, not a {fmt} file")
    if not path.is_file():
        raise AnnotatorError(f"input file not found: {path}")
    if path.stat().st_size == 0:
        raise AnnotatorError(f"{path}: the file is empty")
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
            warn_merged_rows(frame, path)
        elif fmt == "jsonl":
            frame = read_jsonl(path)
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise AnnotatorError(f"{path}: not valid UTF-8 (byte {exc.start}: {exc.reason}); re-encode the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise AnnotatorError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise AnnotatorError(f"{path}: cannot be read as {fmt}: {str(exc).splitlines()[0]}") from None
    if frame.empty:
        raise AnnotatorError(f"{path}: the file has no rows")
    return frame


def read_jsonl(path: Path) -> pd.DataFrame:
    """One JSON object per line (a UTF-8 byte-order mark is skipped); values exactly as JSON gives them.
    Only "\n" ends a line: JSON escapes every line break inside a string, so nothing else can split a record."""
    records = []
    with path.open(encoding="utf-8-sig", newline="\n") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AnnotatorError(f"{path}: line {number} is not JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(record, dict):
                raise AnnotatorError(f"{path}: line {number} is a JSON {type(record).__name__}, not an object")
            records.append(record)
    return pd.DataFrame.from_records(records)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def warn_merged_rows(frame: pd.DataFrame, path: Path) -> None:
    """Warn (InputWarning) when a field spans whole lines that each parse as a row of the file: the mark of
    an unclosed quote that merged rows into one item (valid CSV, rarely meant). Names the first such row."""
    n_columns = frame.shape[1]
    if n_columns < 2:
        return
    line = 2  # the header is line 1
    for row, values in enumerate(frame.itertuples(index=False, name=None)):
        for column, value in zip(frame.columns, values):
            if not isinstance(value, str) or ("\n" not in value and "\r" not in value):
                continue
            inner = _LINE_BREAK.split(value)[1:-1]  # whole lines of the file inside the field
            if inner and all(len(next(csv.reader([text]), [])) == n_columns for text in inner):
                warnings.warn(
                    f"{path}: row {row} (line {line}), column '{column}', holds {len(inner) + 2} lines of the file, and "
                    f"{len(inner)} look like rows of it: an unclosed quote may have merged rows into one item",
                    InputWarning, stacklevel=3,
                )  # fmt: skip
                return
        line += sum(len(_LINE_BREAK.findall(v)) for v in values if isinstance(v, str)) + 1


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically: a temporary file in the same folder, then rename over the target. Every text
    round-trips through `read_table` exactly (a datasets folder keeps the features it was read with, see
    `hf_datasets`): CSV quotes every non-numeric field (a lone carriage
    return inside a text cannot end a row), JSONL is one `json.dumps` object per line."""
    path = Path(path)
    fmt = table_format(path)
    if fmt == "dataset":
        return write_dataset(frame, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "csv":
            frame.to_csv(tmp_name, index=False, quoting=csv.QUOTE_NONNUMERIC, encoding="utf-8")
        elif fmt == "jsonl":
            records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
            with open(tmp_name, "w", encoding="utf-8", newline="\n") as out:
                out.writelines(json.dumps(record, ensure_ascii=False, default=str) + "\n" for record in records)
        else:
            frame.to_parquet(tmp_name, index=False)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def rename_columns(frame: pd.DataFrame, mapping: dict[str, str]) -> pd.DataFrame:
    """`frame.rename(columns=mapping)`, with the features a datasets input carries renamed alike."""
    renamed = frame.rename(columns=mapping)
    if FEATURES in frame.attrs:
        renamed.attrs[FEATURES] = {mapping.get(k, k): v for k, v in frame.attrs[FEATURES].items()}
    return renamed


def require_columns(frame: pd.DataFrame, columns: list[str], *, source: str) -> None:
    """Raise one clear error naming the missing columns and the ones that exist."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnnotatorError(f"{source}: missing column(s) {missing}; the file has {list(frame.columns)}")
