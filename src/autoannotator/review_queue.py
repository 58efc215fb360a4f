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
    labels in the file (as "row R (id I): a, b"), settled only under an `on_conflict` policy."""

    imported: int = 0
    already_answered: int = 0
    unanswered: int = 0
    conflicts: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def _answers_from_file(path: Path) -> list[tuple[int, object]]:
    """(row, raw label) pairs in file order, one per answer: every line of our JSONL, every annotation
    (not cancelled) of each Label Studio task; a task or line without an answer gives (row, None)."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            return [(int(r["row"]), r.get("label")) for r in records]
        pairs: list[tuple[int, object]] = []
        for entry in json.loads(text):
            row = int(entry["data"]["row"])
            choices = [
                (result.get("value", {}).get("choices") or [None])[0]
                for a in entry.get("annotations", []) if not a.get("was_cancelled")
                for result in a.get("result", [])[-1:]
            ]  # fmt: skip
            pairs += [(row, choice) for choice in choices] or [(row, None)]
        return pairs
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise AnnotatorError(f"{path}: not a review export of this tool or Label Studio ({type(exc).__name__}: {exc})") from None


def import_answers(
    path: Path, store: RunStore, task: Task, *, source: str = "human", on_conflict: ConflictPolicy | None = None
) -> ImportReport:
    """Apply filled answers to waiting items. Labels outside the task are refused (nothing imported). An item
    answered with different labels in the file is a conflict: none of its answers is imported unless
    `on_conflict` picks the first or the last in file order; repeated equal answers count once."""
    report = ImportReport()
    answers: dict[int, list[str]] = {}
    for row, raw in _answers_from_file(path):
        labels = answers.setdefault(row, [])
        if raw is None or str(raw).strip() == "":
            continue
        label = task.resolve_label(raw)
        if label is None:
            report.invalid.append(f"row {row}: {raw!r}")
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
