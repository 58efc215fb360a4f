"""Reviews and leases: every reviewer answer (the log), settling pending items, and who holds which item."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence

from autoannotator.store.database import Database, now
from autoannotator.store.items import ItemRecord, record_from_row


class ReviewLog:
    """The `reviews` log and the `leases` of the review page, over the items they settle."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save_reviews(
        self, answers: Iterable[tuple[int, str, str | None, dict | None, dict]], concluded: Mapping[int, str] | None = None
    ) -> int:
        """Log (row, reviewer, label, probs, detail) answers and settle pending items that got a label.

        The item's `reviewed_label` is the answer; its `label` is the answer too, or `concluded[row]` when given
        (the label the run concluded from the answer, --review-mode combine). One transaction. An item is
        settled once: an answer for an item that is no longer pending is logged but changes nothing. Returns
        how many items were settled.
        """
        concluded = concluded or {}
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
                        (concluded.get(row, label), label, reviewer, now(), row),
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

    def reopen(self, row: int, source: str, *, reviewer: str | None = None) -> bool:
        """Undo a reviewer's answer: the item goes back to the review queue. Only answers from `source`;
        the log's undo line names `reviewer` (the person, as in their answers' detail) when given."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE items SET state = 'pending_review', label = NULL, reviewed_label = NULL, label_source = 'unresolved',"
                " updated_at = ? WHERE row = ? AND state = 'done' AND label_source = ?",
                (now(), row, source),
            )
            if cur.rowcount:
                conn.execute(
                    "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, ?, NULL, NULL, ?, ?, ?)",
                    (row, source, json.dumps({"undo": True} | ({"reviewer": reviewer} if reviewer else {})), self.db.session, now()),
                )
        return bool(cur.rowcount)

    def live_answers(self, row: int, source: str) -> dict[str, str]:
        """Reviewer name -> label of each person's answer to one item that they have not undone since.
        Answers are logged as `source` with the person in `detail["reviewer"]` (the one way names are stored)."""
        live: dict[str, str] = {}
        for r in self.reviews(row):
            name = r["detail"].get("reviewer")
            if r["reviewer"] != source or name is None:
                continue
            if r["label"] is not None:
                live[name] = r["label"]
            elif r["detail"].get("undo"):
                live.pop(name, None)
        return live

    def reviews(self, row: int) -> list[dict]:
        """Every answer logged for one item, oldest first."""
        cursor = self.db.conn.execute("SELECT * FROM reviews WHERE row = ? ORDER BY id", (row,))
        return [dict(r) | {"probs": json.loads(r["probs"]) if r["probs"] else None, "detail": json.loads(r["detail"] or "{}")} for r in cursor]

    def lease_next(
        self, reviewer: str, seconds: float, *, exclude_answered_by: str | None = None, later: Sequence[int] = ()
    ) -> ItemRecord | None:
        """Lease a waiting item to `reviewer` for `seconds`: the item they hold if it still waits (a lease on an
        item settled meanwhile, e.g. answered elsewhere, is dropped), else the first waiting item nobody else
        holds. Rows in `later` (the reviewer's skips, oldest first) come after every other item, in that order.
        With `exclude_answered_by=SOURCE` (double review), items this reviewer answered as SOURCE and has not
        undone are never offered to them again. None when nothing is left."""
        now_s = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM leases WHERE reviewer = ? AND NOT EXISTS"
                " (SELECT 1 FROM items WHERE items.row = leases.row AND items.state = 'pending_review')",
                (reviewer,),
            )
            held = conn.execute("SELECT row FROM leases WHERE reviewer = ? AND expires_at > ?", (reviewer, now_s)).fetchone()
            if held is not None:
                row = held["row"]
            else:
                answered, params = "", [json.dumps(list(later)), now_s]
                if exclude_answered_by:
                    answered = (
                        " AND items.row NOT IN (SELECT a.row FROM reviews a WHERE a.reviewer = ? AND a.label IS NOT NULL"
                        " AND json_extract(a.detail, '$.reviewer') = ? AND NOT EXISTS (SELECT 1 FROM reviews u WHERE u.row = a.row"
                        " AND u.id > a.id AND u.reviewer = a.reviewer AND json_extract(u.detail, '$.reviewer') = ?"
                        " AND json_extract(u.detail, '$.undo')))"
                    )
                    params += [exclude_answered_by, reviewer, reviewer]
                found = conn.execute(
                    "SELECT items.row FROM items LEFT JOIN json_each(?) AS later ON later.value = items.row"
                    " WHERE state = 'pending_review' AND items.row NOT IN (SELECT row FROM leases WHERE expires_at > ?)"
                    f"{answered} ORDER BY later.key IS NOT NULL, later.key, items.row LIMIT 1",
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
