"""The gold reviewer: answers from a column of the input (the paper's "+Human" setting in experiments)."""

from __future__ import annotations

from collections.abc import Sequence

from autoannotator.errors import AnnotatorError
from autoannotator.reviewers.base import Answer, Reviewer, ReviewItem
from autoannotator.task import Task, label_text


class GoldReviewer(Reviewer):
    """Reads each hard item's label from `column`; a missing or unknown value leaves the item unresolved."""

    source = "gold"

    def __init__(self, task: Task, column: str | None = None) -> None:
        super().__init__(task)
        if not column:
            raise AnnotatorError("the gold reviewer needs a column: --reviewer gold:COLUMN")
        self.column = column

    def review(self, items: Sequence[ReviewItem]) -> list[Answer]:
        answers = []
        for item in items:
            if self.column not in item.record:
                raise AnnotatorError(f"gold column '{self.column}' is not in the input (columns: {list(item.record)})")
            value = item.record[self.column]
            missing = not (label_text(value) or "").strip()
            label = self.task.resolve_label(value)
            answers.append(Answer(label, reason=None if label else "gold_missing" if missing else "out_of_set"))
        return answers
