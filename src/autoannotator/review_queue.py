"""The review queue outside a run: export hard items (JSONL, Label Studio) and import the answers back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
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


@dataclass
class ImportReport:
    imported: int = 0
    already_answered: int = 0
    unanswered: int = 0
    invalid: list[str] = field(default_factory=list)


def _answers_from_file(path: Path) -> list[tuple[int, str | None]]:
    """(row, raw label) pairs from our JSONL or from a Label Studio JSON export."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
            return [(int(r["row"]), r.get("label")) for r in records]
        pairs = []
        for entry in json.loads(text):
            annotations = [a for a in entry.get("annotations", []) if not a.get("was_cancelled")]
            choice = None
            for a in annotations[-1:]:
                for result in a.get("result", []):
                    choice = (result.get("value", {}).get("choices") or [None])[0]
            pairs.append((int(entry["data"]["row"]), choice))
        return pairs
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise AnnotatorError(f"{path}: not a review export of this tool or Label Studio ({type(exc).__name__}: {exc})") from None


def import_answers(path: Path, store: RunStore, task: Task, *, source: str = "human") -> ImportReport:
    """Apply filled answers to waiting items; labels outside the task are refused (nothing imported)."""
    report = ImportReport()
    pending = {r.row for r in store.pending_review()}
    valid = []
    for row, raw in _answers_from_file(path):
        if raw is None or str(raw).strip() == "":
            report.unanswered += 1
            continue
        label = task.resolve_label(raw)
        if label is None:
            report.invalid.append(f"row {row}: {raw!r}")
        elif row not in pending:
            report.already_answered += 1
        else:
            valid.append((row, source, label, None, {"imported_from": path.name}))
    if report.invalid:
        raise AnnotatorError(f"{path}: labels outside the task {task.label_names}: {report.invalid[:5]}; nothing imported")
    report.imported = store.save_reviews(valid)
    return report
