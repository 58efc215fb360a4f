"""Columns whose cells hold mixed Python types (a JSONL field that is a number here, a string or a list
there): Arrow-based formats (Parquet, Hugging Face datasets) need one type per column, so such a column is
written as text, with one warning naming it. CSV and JSONL take mixed cells as they are."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from typing import Any

import pandas as pd

from autoannotator.errors import InputWarning


def cell_text(value: Any) -> str | None:
    """A cell as text: None/NaN stay missing, a string stays itself, anything else is its JSON form
    (1 -> "1", [1, "a"] -> '[1, "a"]'; what JSON cannot encode, e.g. numpy arrays, via `tolist` or str)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    return json.dumps(value, ensure_ascii=False, default=str)


def type_names(values: Iterable[Any]) -> list[str]:
    """The sorted Python type names of the non-missing values."""
    return sorted({type(v).__name__ for v in values if cell_text(v) is not None})


def as_text_column(frame: pd.DataFrame, column: str, *, target: str) -> pd.DataFrame:
    """A copy of `frame` with `column` as text (`cell_text`), warning (InputWarning) once that the column
    held mixed types and is written to `target` (e.g. 'Parquet') as text."""
    values = frame[column].tolist()
    warnings.warn(
        f"column '{column}' holds mixed types ({', '.join(type_names(values))}): written to {target} as text "
        "(JSON for the non-string values)", InputWarning, stacklevel=3,
    )  # fmt: skip
    converted = frame.copy()
    converted[column] = pd.Series([cell_text(v) for v in values], index=frame.index, dtype=object)
    return converted


def arrow_ready(frame: pd.DataFrame, *, target: str) -> pd.DataFrame:
    """`frame` with every object column that Arrow cannot type (mixed types) as text, see `as_text_column`;
    the frame itself when there is none."""
    import pyarrow as pa

    for column in frame.columns[frame.dtypes == object]:
        try:
            pa.array(frame[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            frame = as_text_column(frame, column, target=target)
    return frame
