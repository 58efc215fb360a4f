"""Turn an input table into the items a run labels: ids, texts, content hashes, with input checks."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field

import pandas as pd

from autoannotator.choices import OptionsError, parse_options, render_item
from autoannotator.errors import AnnotatorError, InputWarning
from autoannotator.io import require_columns
from autoannotator.task import Task, label_text


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class InputItems:
    """The items of one input table, in row order. Missing (NaN) texts become empty strings."""

    ids: list[str]
    texts: list[str]
    hashes: list[str]
    unusable: dict[int, str] = field(default_factory=dict)  # row -> reason it cannot be labeled (e.g. options_unparsed)

    @property
    def content_hash(self) -> str:
        """One hash over every id and text: a resumed run must see the same input."""
        digest = hashlib.sha256()
        for item_id, h in zip(self.ids, self.hashes):
            digest.update(f"{item_id}\t{h}\n".encode())
        return digest.hexdigest()[:32]

    def __len__(self) -> int:
        return len(self.texts)


def clean_text(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def text_columns(task: Task) -> list[str]:
    """The input columns an item's text is made of."""
    return [task.question_column, task.options_column] if task.type == "multiple_choice" else [task.text_column]


def item_texts(frame: pd.DataFrame, task: Task) -> tuple[list[str], dict[int, str]]:
    """Each row's text, and the rows that cannot be labeled with their reason.

    Classification: the text column. Multiple choice: the question and its parsed options rendered as one
    text (`choices.render_item`); a row whose options cannot be parsed gets an empty text and the reason
    `options_unparsed` (it is never guessed)."""
    if task.type != "multiple_choice":
        return [clean_text(v) for v in frame[task.text_column].tolist()], {}
    texts, unusable = [], {}
    for row, (question, options) in enumerate(zip(frame[task.question_column].tolist(), frame[task.options_column].tolist())):
        question = clean_text(question)
        try:
            texts.append(render_item(question, parse_options(options)) if question.strip() else "")
        except OptionsError:
            texts.append("")
            unusable[row] = "options_unparsed"
    return texts, unusable


def items_from_frame(frame: pd.DataFrame, task: Task, *, source: str = "input") -> InputItems:
    """Check the columns and ids of `frame` and extract its items."""
    require_columns(frame, text_columns(task) + ([task.id_column] if task.id_column else []), source=source)
    texts, unusable = item_texts(frame, task)
    if task.id_column:
        raw_ids = frame[task.id_column]
        if raw_ids.isna().any():
            raise AnnotatorError(f"{source}: id column '{task.id_column}' is empty in row {int(raw_ids.isna().to_numpy().argmax())}")
        ids = [str(v) for v in raw_ids.tolist()]
        dupes = pd.Series(ids)[pd.Series(ids).duplicated()].unique().tolist()
        if dupes:
            raise AnnotatorError(f"{source}: duplicate ids in column '{task.id_column}': {dupes[:5]}{' ...' if len(dupes) > 5 else ''}")
    else:
        ids = [str(i) for i in range(len(texts))]
    return InputItems(ids=ids, texts=texts, hashes=[text_hash(t) for t in texts], unusable=unusable)


def normalized_text(text: str) -> str:
    """A text as a model sees it, nearly: case folded, runs of whitespace as one space, stripped (what makes two seed
    rows copies of one item, and a specialist's training text the same as a seed text)."""
    return " ".join(str(text).casefold().split())


def labeled_seed(frame: pd.DataFrame, task: Task, *, label_column: str, source: str = "seed") -> tuple[list[str], list[str]]:
    """(texts, task labels) of a labeled seed table; unknown labels refused. Rows with empty text are dropped, and a
    row whose text repeats an earlier row's (`normalized_text`) is kept once (its copies would fall in different
    cross-fitting folds and make the out-of-fold predictions the learned consensus and --target-accuracy rest on
    in-sample); an InputWarning counts both."""
    require_columns(frame, [*text_columns(task), label_column], source=source)
    texts, labels, unknown = [], [], set()
    seen: set[str] = set()
    empty = repeated = 0
    for text, raw in zip(item_texts(frame, task)[0], frame[label_column].tolist()):
        if not text.strip():
            empty += 1
            continue
        key = normalized_text(text)
        if key in seen:
            repeated += 1
            continue
        seen.add(key)
        label = task.resolve_label(raw)
        if label is None:
            unknown.add(label_text(raw) or "")
            continue
        texts.append(text)
        labels.append(label)
    if unknown:
        raise AnnotatorError(f"{source}: labels {sorted(unknown)[:5]} in column '{label_column}' are not task labels {task.label_names}")
    if empty or repeated:
        said = [f"{empty} rows with an empty text dropped"] if empty else []
        said += [f"{repeated} rows repeating an earlier row's text (case and spacing aside) kept once"] if repeated else []
        warnings.warn(f"{source}: {'; '.join(said)}; {len(texts)} seed items used", InputWarning, stacklevel=2)
    if len(set(labels)) < 2:
        raise AnnotatorError(f"{source}: needs labeled rows of at least two labels, found {sorted(set(labels))}")
    return texts, labels


def seed_rationales(frame: pd.DataFrame, task: Task) -> dict[str, str]:
    """Item text -> its worked solution, from a multiple-choice seed file's rationale column (empty dict for
    classification or when the column is absent); the few-shot examples of chain-of-thought prompts show it."""
    if task.type != "multiple_choice" or task.rationale_column not in frame.columns:
        return {}
    pairs = zip(item_texts(frame, task)[0], frame[task.rationale_column].tolist())
    return {text: clean_text(r).strip() for text, r in pairs if text and clean_text(r).strip()}
