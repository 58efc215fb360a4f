"""Stage 7 of a run: what it did. The run summary (items per route, resumed, time, costs, the consensus, the
reviewer, the guarantee, the audit) and the output table (every input column plus the output columns)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from autoannotator.errors import AnnotatorError
from autoannotator.io import free_input_names, rename_columns
from autoannotator.reasons import unresolved_reason
from autoannotator.store import RunStore

OUTPUT_COLUMNS = ["label", "label_source", "uncertainty", "votes", "reviewed_label", "consensus_label", "reason", "audited"]


@dataclass
class RunSummary:
    """What a run did: items per route, how many were resumed, and where the time went.

    `n_labeled_now`: items that have a label now and had none when this session started (by consensus or
    a reviewer; items that stayed unresolved are not counted). `n_resumed`: items labeled in earlier
    sessions (they had a label when this session started). `n_unlabeled`: items without a label at the end
    (unresolved, waiting for review, never sent), so n_labeled_now + n_resumed + n_unlabeled = n_items.
    `n_never_sent`: items never sent to the specialists or a reviewer (empty text, unusable input).
    """

    n_items: int
    n_labeled_now: int
    n_resumed: int
    n_unlabeled: int
    counts: dict[str, int]
    n_never_sent: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    llm: dict[str, dict[str, float]] = field(default_factory=dict)
    rounds: list[dict] = field(default_factory=list)
    not_refined: list[str] = field(default_factory=list)  # with refinement on: specialists it leaves as they are (llm, lexicon)
    run_dir: str = ""
    output: str | None = None
    random_seed: int = 0
    rule: str = "vote"  # the consensus rule used (the vote rule when --rule learned had no seed)
    consensus: dict[str, Any] = field(default_factory=dict)  # rule 'learned': its cross-validated ECE, folds, weights; or why it fell back
    budget_target: float | None = None  # --budget: the share of all items meant for review (realised: review_fraction)
    reviewer: dict[str, Any] = field(default_factory=dict)  # the review mode and the reviewer probe's figures (probe.ProbeAnswers.figures)
    target_accuracy: dict[str, Any] = field(default_factory=dict)  # --target-accuracy: certificates, threshold in force, guard events
    audit: dict[str, Any] = field(default_factory=dict)  # --audit: audited items and the estimated accuracy (audit.audit_figures)

    @property
    def review_fraction(self) -> float:
        """Share of all items routed to review (reviewed, or still unresolved after being sent);
        items never sent (`n_never_sent`) are not counted as reviewed."""
        reviewed = sum(v for k, v in self.counts.items() if k != "consensus") - self.n_never_sent
        return reviewed / self.n_items if self.n_items else 0.0

    @property
    def reviewed_fraction(self) -> float:
        """Share of all items routed to review that the reviewer answered (audited items not counted): what
        `review_fraction` realised once items left unresolved (a --max-llm-calls cap, failed answers) are set apart."""
        answered = sum(v for k, v in self.counts.items() if k not in ("consensus", "unresolved")) - self.audit.get("n_answered", 0)
        return answered / self.n_items if self.n_items else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"review_fraction": self.review_fraction, "reviewed_fraction": self.reviewed_fraction}


@dataclass
class AnnotationResult:
    """The labeled table (every input column plus the output columns) and the run summary."""

    frame: pd.DataFrame
    summary: RunSummary


def reasons(store: RunStore, has_reviewer: bool) -> dict[int, str]:
    """Row -> why the item stayed unresolved (see `autoannotator.reasons`), for every item without a label."""
    return {row: unresolved_reason(state, logged, has_reviewer=has_reviewer) for row, (state, logged) in store.unresolved_states().items()}


def output_frame(frame: pd.DataFrame, store: RunStore, unusable: dict[int, str], has_reviewer: bool) -> pd.DataFrame:
    """Every input column (a clashing one kept as input_<name>, see `free_input_names`) plus the output columns, in input order.
    `unusable`: rows the input itself leaves unlabelable, with their reason (e.g. options_unparsed). Raises
    AnnotatorError when the store does not hold one item per input row."""
    why = reasons(store, has_reviewer) | unusable
    stored = pd.DataFrame(
        [
            {"row": r.row, "label": r.label, "label_source": r.label_source, "uncertainty": r.uncertainty,
             "votes": json.dumps(r.votes, ensure_ascii=False), "reviewed_label": r.reviewed_label,
             "consensus_label": r.consensus_label, "reason": why.get(r.row), "audited": r.audited}
            for r in store.items()
        ],
        columns=["row", *OUTPUT_COLUMNS],
    ).set_index("row")  # fmt: skip
    if len(stored) != len(frame):
        raise AnnotatorError(f"run store has {len(stored)} items for {len(frame)} input rows")
    renamed = rename_columns(frame, free_input_names(list(frame.columns), OUTPUT_COLUMNS))
    labeled = pd.concat([renamed.reset_index(drop=True), stored.sort_index().reset_index(drop=True)], axis=1)
    labeled.attrs = renamed.attrs  # a datasets input's features, for the output
    return labeled
