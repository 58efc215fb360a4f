"""Read and write tables (CSV, JSONL, Parquet) with clear errors, and write outputs atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from autoannotator.errors import AnnotatorError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path) -> str:
    """The format named by the file's suffix, or a clear error."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise AnnotatorError(f"{path}: unsupported file type '{suffix}' (use .csv, .jsonl or .parquet)")
    return FORMATS[suffix]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, JSONL or Parquet file as strings-preserving DataFrame; raise AnnotatorError on bad input."""
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise AnnotatorError(f"input file not found: {path}")
    if path.stat().st_size == 0:
        raise AnnotatorError(f"{path}: the file is empty")
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        elif fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
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


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically: a temporary file in the same folder, then rename over the target."""
    path = Path(path)
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "csv":
            frame.to_csv(tmp_name, index=False)
        elif fmt == "jsonl":
            frame.to_json(tmp_name, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(tmp_name, index=False)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def require_columns(frame: pd.DataFrame, columns: list[str], *, source: str) -> None:
    """Raise one clear error naming the missing columns and the ones that exist."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnnotatorError(f"{source}: missing column(s) {missing}; the file has {list(frame.columns)}")
