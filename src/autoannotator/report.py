"""Evaluate a labeled file against a gold column: accuracy, macro-F1, confusion matrix, accuracy per route."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score

from autoannotator.errors import AnnotatorError
from autoannotator.io import require_columns
from autoannotator.task import label_text, numeric_text

UNRESOLVED = "(unresolved)"
PREDICTED_COLUMNS = ("label", "label_source", "uncertainty", "votes", "reviewed_label", "consensus_label", "reason", "audited")


@dataclass
class Evaluation:
    """Scores of one labeled table. `accuracy` counts unresolved items as wrong; `accuracy_labeled` skips them."""

    n_items: int
    n_labeled: int
    accuracy: float
    accuracy_labeled: float
    macro_f1: float
    route_counts: dict[str, int]
    route_accuracy: dict[str, float | None]
    labels: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return self.n_labeled / self.n_items if self.n_items else 0.0


def as_label(value: object) -> str:
    """A cell of a label column as label text ('' where missing): numbers by their string form, so a
    JSONL or Parquet column of 1s (float 1.0 once a value is missing), or a CSV column of "1.0", compares
    equal to the label "1"."""
    text = (label_text(value) or "").strip()
    number = numeric_text(text)
    return label_text(number) if number is not None else text


def refuse_foreign_gold(gold: pd.Series, gold_column: str, known: set[str] | None) -> None:
    """Raise AnnotatorError when `gold` cannot be a column of true labels, so its confusion matrix would mean
    nothing. With the task's labels (`known`): more than half the values are not labels. Without them the
    predicted labels are no test (a run may never predict a class the gold holds), so: free text, i.e. more than
    10 distinct values that are also more than half the rows."""
    if known:
        outside = gold[~gold.isin(known)]
        if len(outside) * 2 > len(gold):
            raise AnnotatorError(f"gold column '{gold_column}': {len(outside)} of {len(gold)} values are not labels {sorted(known)[:10]} "
                                 f"(e.g. {outside.iloc[0][:40]!r}); is it the column of true labels?")  # fmt: skip
        return
    distinct = gold.nunique()
    if distinct > 10 and distinct * 2 > len(gold):
        raise AnnotatorError(f"gold column '{gold_column}': {distinct} different values in {len(gold)} rows (e.g. {gold.iloc[0][:40]!r}): "
                             "free text, not labels? (--task checks it against the task's labels)")  # fmt: skip


def evaluate_frame(frame: pd.DataFrame, gold_column: str, *, label_order: list[str] | None = None) -> Evaluation:
    """Compare `label` with `gold_column` on the rows that have a gold value. Raises AnnotatorError when
    the gold column cannot hold true labels (checked against `label_order` when given), see `refuse_foreign_gold`."""
    if gold_column in PREDICTED_COLUMNS:
        hint = f" (the input's own '{gold_column}' column is kept as 'input_{gold_column}')" if f"input_{gold_column}" in frame else ""
        raise AnnotatorError(f"'{gold_column}' is an output column, not gold labels{hint}")
    require_columns(frame, [gold_column, "label", "label_source"], source="labeled file")
    all_gold = frame[gold_column].map(as_label)
    rows = frame[all_gold != ""]
    if rows.empty:
        raise AnnotatorError(f"gold column '{gold_column}' has no values")
    gold = all_gold[rows.index]
    predicted = rows["label"].map(as_label).replace("", UNRESOLVED)
    labeled = predicted != UNRESOLVED
    refuse_foreign_gold(gold, gold_column, set(label_order) if label_order else None)
    labels = label_order or sorted(set(gold) | set(predicted[labeled]))
    correct = gold == predicted
    route_accuracy = {}
    for route, group in rows.groupby("label_source"):
        route_accuracy[str(route)] = float(correct[group.index].mean()) if route != "unresolved" else None
    matrix_labels = labels + ([UNRESOLVED] if (~labeled).any() else [])
    return Evaluation(
        n_items=len(rows),
        n_labeled=int(labeled.sum()),
        accuracy=float(correct.mean()),
        accuracy_labeled=float(correct[labeled].mean()) if labeled.any() else 0.0,
        macro_f1=float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
        route_counts={str(k): int(v) for k, v in rows["label_source"].value_counts().items()},
        route_accuracy=route_accuracy,
        labels=matrix_labels,
        confusion=confusion_matrix(gold, predicted, labels=matrix_labels).tolist(),
    )
