"""The review queue outside a run: export hard items (JSONL, Label Studio) and import the answers back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import quoteattr

from autoannotator.errors import AnnotatorError
from autoannotator.store import ItemRecord, RunStore
from autoannotator.task import Task


def export_jsonl(items: list[ItemRecord], task: Task, path: Path) -> int:
    """One JSON object per hard item, with an empty `label` for the reviewer to fill."""
    with path.open("w", encoding="utf-8") as out:
        for r in items:
            record = {"row": r.row, "id": r.item_id, "text": r.text, "votes": r.votes,
                      "consensus_label": r.consensus_label, "labels": task.label_names, "label": None}  # fmt: skip
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(items)


def label_studio_config(task: Task) -> str:
    """The labeling interface for these tasks: the text and one choice per label."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in task.label_names)
    return f'<View>\n  <Text name="text" value="$text"/>\n  <Choices name="label" toName="text" choice="single">\n{choices}\n  </Choices>\n</View>\n'


def export_label_studio(items: list[ItemRecord], task: Task, path: Path) -> int:
    """Label Studio task-import JSON (the consensus label as a pre-annotation) and its config beside it (.xml)."""
    tasks = []
    for r in items:
        entry = {"data": {"text": r.text, "row": r.row, "item_id": r.item_id, "votes": json.dumps(r.votes)}}
        if r.consensus_label:
            result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [r.consensus_label]}}]
            entry["predictions"] = [{"model_version": "autoannotator-consensus", "result": result}]
        tasks.append(entry)
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    path.with_suffix(".xml").write_text(label_studio_config(task), encoding="utf-8")
    return len(tasks)


ConflictPolicy = Literal["first", "last"]


@dataclass
class ImportReport:
    """What an import did, counted per item: `imported` items settled by it, `already_answered` items that
    were no longer waiting, `unanswered` items with no answer in the file, `conflicts` items given different
    labels in the file (as "row R (id I): a, b"), settled only under an `on_conflict` policy. Per line of the
    file: `mismatched` lines whose row and id name different items, `unknown` lines that name no item of the
    run; neither is imported."""

    imported: int = 0
    already_answered: int = 0
    unanswered: int = 0
    conflicts: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


@dataclass
class FileAnswer:
    """One answer of an import file: the item it names (`row` and/or `id`, as written) and its raw label."""

    row: object
    item_id: object
    raw: object

    @property
    def where(self) -> str:
        return ", ".join(f"{k} {v!r}" for k, v in (("row", self.row), ("id", self.item_id)) if v is not None)


def _answers_from_file(path: Path) -> list[FileAnswer]:
    """The answers in file order: every line of our JSONL (naming its item by "id", "row" or both), every
    annotation (not cancelled) of each Label Studio task (by data.item_id and data.row); a task or line
    without an answer gives a None label."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            return [FileAnswer(r.get("row"), r.get("id"), r.get("label")) for r in records]
        answers: list[FileAnswer] = []
        for entry in json.loads(text):
            data = entry["data"]
            choices = [
                (result.get("value", {}).get("choices") or [None])[0]
                for a in entry.get("annotations", []) if not a.get("was_cancelled")
                for result in a.get("result", [])[-1:]
            ]  # fmt: skip
            answers += [FileAnswer(data.get("row"), data.get("item_id"), choice) for choice in choices or [None]]
        return answers
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise AnnotatorError(f"{path}: not a review export of this tool or Label Studio ({type(exc).__name__}: {exc})") from None


def _item_row(answer: FileAnswer, ids: dict[str, int], stored: dict[int, str]) -> tuple[int | None, str | None]:
    """(row of the item the answer names, None) or (None, 'mismatched'|'unknown'). The id decides when given;
    a row given too must be that item's row."""
    row = answer.row
    if row is not None and not (isinstance(row, int) and not isinstance(row, bool)):
        row = int(row) if isinstance(row, str) and row.strip().isdigit() else -1
    if answer.item_id is not None:
        by_id = ids.get(str(answer.item_id))
        if by_id is None:
            return None, "unknown"
        if row is not None and row != by_id:
            return None, "mismatched"
        return by_id, None
    if row is None or row not in stored:
        return None, "unknown"
    return row, None


def import_answers(
    path: Path, store: RunStore, task: Task, *, source: str = "human", on_conflict: ConflictPolicy | None = None
) -> ImportReport:
    """Apply filled answers to waiting items. A line names its item by id (the row is optional; when both are
    given they must name the same item) or by row; lines naming no item or two different items are reported
    and skipped. Labels outside the task are refused (nothing imported). An item answered with different
    labels in the file is a conflict: none of its answers is imported unless `on_conflict` picks the first or
    the last in file order; repeated equal answers count once."""
    report = ImportReport()
    stored = store.row_ids()
    ids = {item_id: row for row, item_id in stored.items()}
    answers: dict[int, list[str]] = {}
    for answer in _answers_from_file(path):
        row, problem = _item_row(answer, ids, stored)
        if problem == "mismatched":
            report.mismatched.append(f"{answer.where} (id {answer.item_id!r} is row {ids[str(answer.item_id)]})")
            continue
        if problem == "unknown":
            report.unknown.append(answer.where or "a line naming neither row nor id")
            continue
        labels = answers.setdefault(row, [])
        if answer.raw is None or str(answer.raw).strip() == "":
            continue
        label = task.resolve_label(answer.raw)
        if label is None:
            report.invalid.append(f"{answer.where}: {answer.raw!r}")
        else:
            labels.append(label)
    if report.invalid:
        raise AnnotatorError(f"{path}: labels outside the task {task.label_names}: {report.invalid[:5]}; nothing imported")
    pending = {r.row: r for r in store.pending_review()}
    valid = []
    for row, labels in answers.items():
        if not labels:
            report.unanswered += 1
        elif row not in pending:
            report.already_answered += 1
        else:
            if len(set(labels)) > 1:
                report.conflicts.append(f"row {row} (id {pending[row].item_id}): {', '.join(labels)}")
                if on_conflict is None:
                    continue
            label = labels[-1] if on_conflict == "last" else labels[0]
            valid.append((row, source, label, None, {"imported_from": path.name, "answers_in_file": len(labels)}))
    report.imported = store.save_reviews(valid)
    return report
