"""Read and write tables (CSV, JSONL, Parquet, Hugging Face datasets folders) with clear errors, and write outputs atomically."""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.hf_datasets import FEATURES, read_dataset, write_dataset
from autoannotator.mixed_columns import arrow_ready

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
            refuse_duplicate_header(path)
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
            warn_merged_rows(frame, path)
        elif fmt == "jsonl":
            frame = read_jsonl(path)
        else:
            refuse_repeated_names(pq.read_schema(path).names, path)
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
                record = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as exc:
                raise AnnotatorError(f"{path}: line {number} is not JSON: {exc.msg} (column {exc.colno})") from None
            except DuplicateKey as exc:
                raise AnnotatorError(f"{path}: line {number} names the field '{exc.args[0]}' twice; rename one") from None
            if not isinstance(record, dict):
                raise AnnotatorError(f"{path}: line {number} is a JSON {type(record).__name__}, not an object")
            records.append(record)
    return pd.DataFrame.from_records(records)


class DuplicateKey(Exception):
    """A JSON object that names one key twice (json would keep the last value silently)."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise DuplicateKey(key)
    return dict(pairs)


def refuse_duplicate_header(path: Path) -> None:
    """Raise AnnotatorError naming the first column that the CSV header names twice (pandas would silently
    rename the second to 'NAME.1')."""
    with path.open(encoding="utf-8-sig", newline="") as lines:
        refuse_repeated_names(next(csv.reader(lines), []), path)


def refuse_repeated_names(names: list[str], path: Path) -> None:
    """Raise AnnotatorError naming the first column name that `names` (a table's header or schema) repeats."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise AnnotatorError(f"{path}: the header names the column '{name}' twice; rename one")
        seen.add(name)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _shape(value: str) -> str:
    """A value's outline: runs of digits -> 9, runs of letters -> a ('s12' -> 'a9'), to tell ids from prose."""
    return re.sub(r"[^\W\d_]+", "a", re.sub(r"\d+", "9", value.strip()))


def warn_merged_rows(frame: pd.DataFrame, path: Path) -> None:
    """Warn (InputWarning) when a field spans lines of the file that each look like a row of it: the mark of
    an unclosed quote that merged rows into one item (valid CSV, rarely meant). Names the first such row.

    The lines a row spans are rebuilt from its values (the fields before the multi-line one joined to its first
    line, the fields after it to its last line); a line looks like a row when it splits into as many fields as
    the header and its first field has the outline of a value of the first column (e.g. an id 's2')."""
    n_columns = frame.shape[1]
    if n_columns < 2:
        return
    first_shapes = {_shape(v) for v in frame.iloc[:, 0] if isinstance(v, str) and not _LINE_BREAK.search(v)}

    def looks_like_row(line: str) -> bool:
        fields = next(csv.reader([line], quoting=csv.QUOTE_NONE), [])
        return len(fields) == n_columns and _shape(fields[0]) in first_shapes

    cells = frame.fillna("").astype(str)
    breaks = sum(cells[column].str.count(_LINE_BREAK.pattern) for column in cells.columns).to_numpy()
    first_line = 2 + np.arange(len(frame)) + np.cumsum(breaks) - breaks  # the header is line 1
    table = cells.to_numpy()
    for row in np.flatnonzero(breaks > 0):
        values = table[row].tolist()
        for c, (column, cell) in enumerate(zip(frame.columns, values)):
            segments = _LINE_BREAK.split(cell)
            if len(segments) < 2:
                continue
            lines = [",".join([*values[:c], segments[0]]), *segments[1:-1], ",".join([segments[-1], *values[c + 1 :]])]
            if all(looks_like_row(text) for text in lines):
                warnings.warn(
                    f"{path}: row {row} (line {first_line[row]}), column '{column}', spans {len(lines)} lines of the "
                    "file that each look like a row of it: an unclosed quote may have merged rows into one item",
                    InputWarning, stacklevel=3,
                )  # fmt: skip
                return


def current_umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically: a temporary file in the same folder, then rename over the target. Every text
    round-trips through `read_table` exactly (a datasets folder keeps the features it was read with, see
    `hf_datasets`): CSV quotes every non-numeric field (a lone carriage
    return inside a text cannot end a row), JSONL is one `json.dumps` object per line. A column of mixed
    types (int here, str or list there) goes to Parquet or a datasets folder as text, with one warning
    naming it (`mixed_columns`); column types never stop a write."""
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
            arrow_ready(frame, target="Parquet").to_parquet(tmp_name, index=False)
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp makes the file private (0600); a written table is not
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


def free_input_names(columns: Sequence[str], reserved: Sequence[str]) -> dict[str, str]:
    """New names for the input columns that clash with `reserved` (the output columns): input_<name>, or
    input_input_<name> and so on while that is taken by another input column, a reserved name or an earlier
    pick (an earlier output labeled again holds both `label` and `input_label`). Deterministic: in column order."""
    taken = set(columns) | set(reserved)
    mapping: dict[str, str] = {}
    for column in columns:
        if column in reserved:
            name = f"input_{column}"
            while name in taken:
                name = f"input_{name}"
            mapping[column] = name
            taken.add(name)
    return mapping


def require_columns(frame: pd.DataFrame, columns: list[str], *, source: str) -> None:
    """Raise one clear error naming the missing columns and the ones that exist."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnnotatorError(f"{source}: missing column(s) {missing}; the file has {list(frame.columns)}")
