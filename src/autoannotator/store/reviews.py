"""Reviews and leases: every reviewer answer (the log), settling pending items, and who holds which item."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from autoannotator.store.database import Database, now
from autoannotator.store.items import ItemRecord, record_from_row


class ReviewLog:
    """The `reviews` log and the `leases` of the review page, over the items they settle."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save_reviews(self, answers: Iterable[tuple[int, str, str | None, dict | None, dict]]) -> int:
        """Log (row, reviewer, label, probs, detail) answers and settle pending items that got a label.

        One transaction. An item is settled once: an answer for an item that is no longer pending
        is logged but changes nothing. Returns how many items were settled.
        """
        settled = 0
        with self.db.transaction() as conn:
            for row, reviewer, label, probs, detail in answers:
                conn.execute(
                    "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (row, reviewer, label, None if probs is None else json.dumps(probs), json.dumps(detail), self.db.session, now()),
                )
                if label is not None:
                    cur = conn.execute(
                        "UPDATE items SET state = 'done', label = ?, reviewed_label = ?, label_source = ?, updated_at = ?"
                        " WHERE row = ? AND state = 'pending_review'",
                        (label, label, reviewer, now(), row),
                    )
                    settled += cur.rowcount
        return settled

    def log_review(self, row: int, reviewer: str, label: str | None, detail: dict | None = None) -> None:
        """Log an answer that does not settle the item on its own (the first of a double review)."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, ?, ?, NULL, ?, ?, ?)",
                (row, reviewer, label, json.dumps(detail or {}), self.db.session, now()),
            )

    def reopen(self, row: int, source: str) -> bool:
        """Undo a reviewer's answer: the item goes back to the review queue. Only answers from `source`."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE items SET state = 'pending_review', label = NULL, reviewed_label = NULL, label_source = 'unresolved',"
                " updated_at = ? WHERE row = ? AND state = 'done' AND label_source = ?",
                (now(), row, source),
            )
            if cur.rowcount:
                conn.execute(
                    "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, ?, NULL, NULL, ?, ?, ?)",
                    (row, source, json.dumps({"undo": True}), self.db.session, now()),
                )
        return bool(cur.rowcount)

    def reviews(self, row: int) -> list[dict]:
        """Every answer logged for one item, oldest first."""
        cursor = self.db.conn.execute("SELECT * FROM reviews WHERE row = ? ORDER BY id", (row,))
        return [dict(r) | {"probs": json.loads(r["probs"]) if r["probs"] else None, "detail": json.loads(r["detail"] or "{}")} for r in cursor]

    def lease_next(self, reviewer: str, seconds: float, *, exclude_answered_by: bool = False) -> ItemRecord | None:
        """Lease the first waiting item that nobody else holds (or whose lease expired) to `reviewer`.
        A reviewer who already holds a lease gets that item again. With `exclude_answered_by`, items this
        reviewer already answered (double review) are skipped."""
        now_s = time.time()
        with self.db.transaction() as conn:
            held = conn.execute("SELECT row FROM leases WHERE reviewer = ? AND expires_at > ?", (reviewer, now_s)).fetchone()
            if held is not None:
                row = held["row"]
            else:
                skip = " AND row NOT IN (SELECT row FROM reviews WHERE reviewer = ? AND label IS NOT NULL)" if exclude_answered_by else ""
                params = (now_s, f"human:{reviewer}") if exclude_answered_by else (now_s,)
                found = conn.execute(
                    "SELECT row FROM items WHERE state = 'pending_review' AND row NOT IN"
                    f" (SELECT row FROM leases WHERE expires_at > ?){skip} ORDER BY row LIMIT 1",
                    params,
                ).fetchone()
                if found is None:
                    return None
                row = found["row"]
            conn.execute(
                "INSERT INTO leases(row, reviewer, expires_at) VALUES (?, ?, ?) ON CONFLICT(row) DO UPDATE SET"
                " reviewer = excluded.reviewer, expires_at = excluded.expires_at",
                (row, reviewer, now_s + seconds),
            )
            return record_from_row(conn.execute("SELECT * FROM items WHERE row = ?", (row,)).fetchone())

    def lease_holder(self, row: int) -> str | None:
        found = self.db.conn.execute("SELECT reviewer FROM leases WHERE row = ? AND expires_at > ?", (row, time.time())).fetchone()
        return None if found is None else found["reviewer"]

    def release(self, row: int, reviewer: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE row = ? AND reviewer = ?", (row, reviewer))
