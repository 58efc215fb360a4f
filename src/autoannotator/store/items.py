"""Items and their provenance: each processed item's votes, route, final label and where it came from."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from autoannotator.store.database import Database, all_agreed, mean_confidence, now

REVIEWED = "state = 'done' AND label_source IN ('gold', 'llm', 'human') AND seed = 0"
# An LLM-reviewed item whose label is not the reviewer's answer (--review-mode combine kept the pool's label) is
# stored with label_source 'llm' and read as COMBINED_SOURCE: the route is derived from what is stored.
COMBINED_SOURCE = "llm+consensus"
ROUTE = f"CASE WHEN label_source = 'llm' AND label IS NOT reviewed_label THEN '{COMBINED_SOURCE}' ELSE label_source END"


def route_of(label_source: str, label: str | None, reviewed_label: str | None) -> str:
    """The route an item's label came by (the SQL expression ROUTE, in Python)."""
    return COMBINED_SOURCE if label_source == "llm" and label != reviewed_label else label_source


@dataclass
class ItemRecord:
    """One processed item as stored."""

    row: int
    item_id: str
    text_hash: str
    state: str
    label: str | None
    label_source: str
    consensus_label: str | None
    uncertainty: float | None
    votes: dict
    reviewed_label: str | None = None
    text: str = ""
    unanimous: bool = False
    seed: bool = False
    audited: bool = False  # --audit: an auto-accepted item also sent to the reviewer
    certificate: int | None = None  # --target-accuracy: the certificate (store.run_state) whose threshold accepted it


def record_from_row(row: sqlite3.Row) -> ItemRecord:
    """An `items` table row as an ItemRecord."""
    return ItemRecord(
        row=row["row"], item_id=row["item_id"], text_hash=row["text_hash"], state=row["state"], label=row["label"],
        label_source=route_of(row["label_source"], row["label"], row["reviewed_label"]), consensus_label=row["consensus_label"], uncertainty=row["uncertainty"],
        votes=json.loads(row["votes"]), reviewed_label=row["reviewed_label"], text=row["text"],
        unanimous=bool(row["unanimous"]), seed=bool(row["seed"]), audited=bool(row["audited"]),
        certificate=row["certificate"],
    )  # fmt: skip


class ItemTable:
    """The `items` table: one row per processed input row, written once per item and settled by reviews."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def processed_rows(self) -> dict[int, str]:
        """Row number -> text hash of every item already stored."""
        return {r["row"]: r["text_hash"] for r in self.db.conn.execute("SELECT row, text_hash FROM items")}

    def save_items(self, records: Iterable[ItemRecord]) -> None:
        """Insert one chunk's items in one transaction; an item stored before is an error, never a second label."""
        rows = [
            (r.row, r.item_id, r.text_hash, r.text, r.state, r.label, r.label_source, r.consensus_label, r.uncertainty,
             json.dumps(r.votes, sort_keys=True), r.reviewed_label, self.db.session, now(), int(r.unanimous),
             mean_confidence(r.votes), int(r.seed), int(r.audited), r.certificate)
            for r in records
        ]  # fmt: skip
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO items(row, item_id, text_hash, text, state, label, label_source, consensus_label, uncertainty,"
                " votes, reviewed_label, session, updated_at, unanimous, confidence, seed, audited, certificate)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def pending_review(self, rows: list[int] | None = None) -> list[ItemRecord]:
        """Hard items still waiting for a reviewer's answer, all of them or those among `rows`."""
        conn = self.db.conn
        if rows is None:
            return [record_from_row(r) for r in conn.execute("SELECT * FROM items WHERE state = 'pending_review' ORDER BY row")]
        wanted = set(rows)
        cursor = conn.execute(
            "SELECT * FROM items WHERE state = 'pending_review' AND row BETWEEN ? AND ? ORDER BY row", (min(rows), max(rows))
        )
        return [record_from_row(r) for r in cursor if r["row"] in wanted]

    def item(self, row: int) -> ItemRecord | None:
        found = self.db.conn.execute("SELECT * FROM items WHERE row = ?", (row,)).fetchone()
        return None if found is None else record_from_row(found)

    def row_ids(self) -> dict[int, str]:
        """Row -> item id of every stored item."""
        return {r["row"]: r["item_id"] for r in self.db.conn.execute("SELECT row, item_id FROM items")}

    def items(self) -> list[ItemRecord]:
        return [record_from_row(r) for r in self.db.conn.execute("SELECT * FROM items ORDER BY row")]

    def uncertainties(self) -> np.ndarray:
        """(n_scored,) the consensus U of every item the specialists scored, in row order."""
        return np.array([r[0] for r in self.db.conn.execute("SELECT uncertainty FROM items WHERE uncertainty IS NOT NULL ORDER BY row")], dtype=float)

    def count_by_state(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self.db.conn.execute("SELECT state, COUNT(*) AS n FROM items GROUP BY state")}

    def count_labeled(self) -> int:
        """Items that have a label (any source)."""
        return self.db.conn.execute("SELECT COUNT(*) FROM items WHERE label IS NOT NULL").fetchone()[0]

    def count_routed(self) -> int:
        """Items routed to review as hard items (any state but skipped, not labeled by consensus, not audited)."""
        return self.db.conn.execute(
            "SELECT COUNT(*) FROM items WHERE state != 'skipped' AND label_source != 'consensus' AND audited = 0"
        ).fetchone()[0]

    def audit_answers(self, rows: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(m,) U and (m,) bool "consensus label = reviewer's label" of the audited items the reviewer answered (of
        `rows` only, by primary key, when given: one chunk's)."""
        query = "SELECT uncertainty, consensus_label = reviewed_label AS agree FROM items WHERE audited = 1 AND reviewed_label IS NOT NULL"
        if rows is None:
            found = self.db.conn.execute(f"{query} ORDER BY row").fetchall()
        else:
            found = [r for part in range(0, len(rows), 900) for r in self.db.conn.execute(
                f"{query} AND row IN ({','.join('?' * len(rows[part:part + 900]))}) ORDER BY row", rows[part:part + 900])]  # fmt: skip
        return np.array([r[0] for r in found], dtype=float), np.array([bool(r[1]) for r in found], dtype=bool)

    def count_by_source(self) -> dict[str, int]:
        cursor = self.db.conn.execute(f"SELECT {ROUTE} AS route, COUNT(*) AS n FROM items GROUP BY route")
        return {r["route"]: r["n"] for r in cursor}

    def unresolved_states(self) -> dict[int, tuple[str, str | None]]:
        """Row -> (state, reason logged with its newest answer, or None) of every item without a label."""
        cursor = self.db.conn.execute(
            "WITH newest AS (SELECT row, MAX(id) AS id FROM reviews GROUP BY row)"
            " SELECT i.row, i.state, json_extract(r.detail, '$.reason') AS reason FROM items i"
            " LEFT JOIN newest ON newest.row = i.row LEFT JOIN reviews r ON r.id = newest.id WHERE i.label IS NULL"
        )
        return {r["row"]: (r["state"], r["reason"]) for r in cursor}

    def labeled_by_review(self, *, used: bool | None = None, gate: bool = False) -> list[ItemRecord]:
        """Reviewed items (gold, llm or human; seed items are not among them): not yet used in a round
        (used=False), used, or all; gate or not."""
        where = f"{REVIEWED} AND gate = ?"
        if used is not None:
            where += " AND used_in_round IS " + ("NOT NULL" if used else "NULL")
        return [record_from_row(r) for r in self.db.conn.execute(f"SELECT * FROM items WHERE {where} ORDER BY row", (int(gate),))]

    def count_reviewed_unused(self) -> int:
        """How many reviewed items wait for a refinement round (an index holds just those: cost ~ that count)."""
        return self.db.conn.execute(
            f"SELECT COUNT(*) FROM items INDEXED BY items_reviewed_unused WHERE {REVIEWED} AND gate = 0 AND used_in_round IS NULL"
        ).fetchone()[0]

    def seed_rows(self) -> list[int]:
        """Rows of the items a seed reviewer labeled first (`--seed-label`)."""
        return [r["row"] for r in self.db.conn.execute("SELECT row FROM items WHERE seed = 1 ORDER BY row")]

    def unanimous_rows(self) -> list[int]:
        """Rows of the consensus items every specialist voted for (none abstained): what replay samples from."""
        cursor = self.db.conn.execute("SELECT row FROM items INDEXED BY items_unanimous WHERE label_source = 'consensus' AND unanimous = 1 ORDER BY row")
        return [r["row"] for r in cursor]

    def by_rows(self, rows: list[int]) -> list[ItemRecord]:
        """The items at `rows`, in that order."""
        found: dict[int, ItemRecord] = {}
        for start in range(0, len(rows), 500):  # SQLite caps the number of parameters
            part = rows[start : start + 500]
            cursor = self.db.conn.execute(f"SELECT * FROM items WHERE row IN ({','.join('?' * len(part))})", part)
            found |= {r["row"]: record_from_row(r) for r in cursor}
        return [found[r] for r in rows]

    def consensus_below(self, confidence: float, *, after_row: int, limit: int) -> list[ItemRecord]:
        """Up to `limit` consensus items past `after_row` (in row order) whose voters' mean confidence is under `confidence`."""
        cursor = self.db.conn.execute(
            "SELECT * FROM items INDEXED BY items_consensus WHERE label_source = 'consensus' AND row > ? AND confidence < ? ORDER BY row LIMIT ?",
            (after_row, confidence, limit),
        )
        return [record_from_row(r) for r in cursor]

    def reroute(self, changes: list[tuple[int, dict, str | None, float, bool]], *, progress: tuple[str, str] | None = None) -> None:
        """Send consensus items back to review with the refined pool's (row, votes, consensus_label, uncertainty,
        unanimous); the review log keeps a line for each, with the old label. One transaction, which also
        records `progress` (a meta key and value) so that a killed re-scoring resumes after it."""
        with self.db.transaction() as conn:
            for row, votes, consensus_label, uncertainty, unanimous in changes:
                old = conn.execute("SELECT label FROM items WHERE row = ?", (row,)).fetchone()["label"]
                conn.execute(
                    "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, 'refine', NULL, NULL, ?, ?, ?)",
                    (row, json.dumps({"rerouted": True, "old_label": old, "new_votes": votes}), self.db.session, now()),
                )
                conn.execute(
                    "UPDATE items SET state = 'pending_review', label = NULL, label_source = 'unresolved', votes = ?, consensus_label = ?,"
                    " uncertainty = ?, unanimous = ?, confidence = ?, certificate = NULL, updated_at = ? WHERE row = ? AND label_source = 'consensus'",
                    (json.dumps(votes, sort_keys=True), consensus_label, uncertainty, int(unanimous), mean_confidence(votes), now(), row),
                )
            if progress is not None:
                self.db.set_meta(*progress)
