"""The report's figures on hand-made items whose answers are worked out by hand."""

from __future__ import annotations

import pytest

from autoannotator.run_report import figures
from autoannotator.store import ItemRecord


def item(row: int, u: float | None, consensus: str | None, votes: dict[str, str | None], *, reviewed: str | None = None,
         source: str | None = None, text: str = "") -> ItemRecord:  # fmt: skip
    source = source or ("gold" if reviewed else "consensus")
    return ItemRecord(row=row, item_id=str(row), text_hash="h", state="done", label=reviewed or (consensus if source == "consensus" else None),
                      label_source=source, consensus_label=consensus, uncertainty=u, votes={n: {"label": v, "p": 0.9} for n, v in votes.items()},
                      reviewed_label=reviewed, text=text)  # fmt: skip


ITEMS = [
    item(0, 0.0, "a", {"s1": "a", "s2": "a"}),
    item(1, 0.0, "b", {"s1": "b", "s2": "b"}),
    item(2, 0.5, "a", {"s1": "a", "s2": "b"}, reviewed="b"),
    item(3, 0.5, "a", {"s1": "a", "s2": None}, reviewed="a"),
]
GOLD = ["a", "a", "b", "a"]  # item 1's consensus is wrong; item 2's consensus is wrong and its review right


def test_agreement_matrix_and_accuracy_on_reviewed_items() -> None:
    agreement = figures.agreement(ITEMS, ["s1", "s2"])
    assert agreement.names == ["s1", "s2", "reviewer"]
    # reviewed: item 2 (s1 a, s2 b, reviewer b) and item 3 (s1 a, s2 abstains, reviewer a)
    assert agreement.rate[0][2] == 0.5 and agreement.count[0][2] == 2
    assert agreement.rate[1][2] == 1.0 and agreement.count[1][2] == 1  # the abstention is left out
    assert agreement.rate[0][1] == 0.0 and agreement.count[0][1] == 1
    assert agreement.accuracy() == [("s1", 0.5, 2), ("s2", 1.0, 1)]


def test_budget_curve_with_gold() -> None:
    curve = figures.budget_curve(ITEMS, GOLD, steps=4)
    assert curve.kind == "gold" and curve.realised_share == 0.5 and curve.n_scored == 4
    assert curve.budgets == [0.0, 0.25, 0.5, 0.75, 1.0]
    # order by uncertainty (ties by row): 2, 3, 0, 1. Consensus alone: items 0 and 3 right -> 0.5.
    assert curve.oracle == [0.5, 0.75, 0.75, 0.75, 1.0]
    assert curve.run_budgets == [0.0, 0.25, 0.5] and curve.run == [0.5, 0.75, 0.75]


def test_budget_curve_without_gold_is_agreement_with_final_labels() -> None:
    curve = figures.budget_curve(ITEMS, None, steps=4)
    assert curve.kind == "reviewed" and curve.oracle == []
    assert curve.run == [0.75, 1.0, 1.0]  # only item 2's review changed a label
    assert figures.budget_curve([item(0, 0.0, "a", {"s1": "a"})], None) is None  # nothing reviewed, no gold: no curve


def test_an_unanswered_hard_item_counts_as_wrong_for_the_run_not_the_oracle() -> None:
    items = [*ITEMS, item(4, 0.9, "a", {"s1": "a", "s2": "b"}, source="unresolved")]
    curve = figures.budget_curve(items, [*GOLD, "a"], steps=5)
    assert curve.realised_share == 0.6  # items 4, 2, 3 went to review
    assert curve.run[0] == 0.6 and curve.run[-1] == 0.6  # consensus alone: 0, 3, 4 right; the run: 2 and 3 right, 4 unresolved
    assert curve.oracle[-1] == 1.0


def test_unresolved_by_reason_counts_and_keeps_examples() -> None:
    items = [item(i, 0.5, "a", {"s1": "a"}, source="unresolved", text=f"t{i}") for i in range(5)] + ITEMS
    reasons = ["out_of_set", "no_reviewer", "out_of_set", "out_of_set", "empty_text"] + [""] * 4
    groups = figures.unresolved_by_reason(items, reasons, examples=2)
    assert [(g.reason, g.items, g.examples) for g in groups] == [("out_of_set", 3, ["t0", "t2"]), ("empty_text", 1, ["t4"]),
                                                               ("no_reviewer", 1, ["t1"])]  # fmt: skip


def test_ledger_percentiles_and_routes() -> None:
    usage = {"m": {"calls": 4, "cache_hits": 2, "failed": 1, "prompt_tokens": 100, "completion_tokens": 8, "cost_usd": 0.5, "seconds": 10.0}}
    [row] = figures.ledger(usage, {"m": [1.0, 2.0, 3.0, 4.0]})
    assert (row.calls, row.cache_hits, row.failed) == (4, 2, 1)
    assert row.latency_p50 == pytest.approx(2.5) and row.latency_p90 == pytest.approx(3.7)
    assert [(r.name, r.items) for r in figures.routes({"unresolved": 1, "gold": 2, "consensus": 7})] == [
        ("consensus", 7), ("gold", 2), ("unresolved", 1)]  # fmt: skip
