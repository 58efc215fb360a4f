"""The run store: one SQLite file (WAL) per run directory, the single source of truth of a run.

It holds each processed item (id, text hash, votes, final label and where it came from), the
specialist versions in use and the run's fingerprint, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from autoannotator.errors import AnnotatorError

STORE_FILE = "run.sqlite"
SCHEMA_VERSION = "3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE TABLE IF NOT EXISTS items (
    row INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE,
    text_hash TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL CHECK (state IN ('done', 'pending_review', 'skipped')),
    label TEXT,
    label_source TEXT NOT NULL CHECK (label_source IN ('consensus', 'llm', 'human', 'gold', 'unresolved')),
    consensus_label TEXT,
    uncertainty REAL,
    votes TEXT NOT NULL,
    reviewed_label TEXT,
    used_in_round INTEGER,
    gate INTEGER NOT NULL DEFAULT 0,
    session INTEGER NOT NULL REFERENCES sessions(id),
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_state ON items(state);
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    row INTEGER NOT NULL REFERENCES items(row),
    reviewer TEXT NOT NULL,
    label TEXT,
    probs TEXT,
    detail TEXT,
    session INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS llm_cache (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS llm_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('paid', 'cached', 'failed')),
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    error TEXT,
    session INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS specialists (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired', 'rejected')),
    round INTEGER,
    gate_before REAL,
    gate_after REAL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS leases (
    row INTEGER PRIMARY KEY REFERENCES items(row),
    reviewer TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    id INTEGER PRIMARY KEY,
    pool_size INTEGER NOT NULL,
    gate_size INTEGER NOT NULL,
    train_size INTEGER NOT NULL,
    seconds REAL NOT NULL,
    details TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


class RunStore:
    """A SQLite run store in `run_dir`; open it with `RunStore.open(run_dir, fingerprint)`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # check_same_thread off: the LLM client may run on a worker thread while the caller's thread waits
        # (inside a running event loop, e.g. Jupyter); the store is never used from two threads at once.
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        self.session: int | None = None

    @classmethod
    def open(cls, run_dir: str | Path, fingerprint: dict) -> RunStore:
        """Open or create the store; a store made for a different run (task, input, settings) is refused."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        store = cls(run_dir / STORE_FILE)
        wanted = json.dumps(fingerprint, sort_keys=True)
        existing = store.get_meta("fingerprint")
        if existing is None:
            with store.transaction():
                store.set_meta("schema_version", SCHEMA_VERSION)
                store.set_meta("fingerprint", wanted)
        elif existing != wanted:
            changed = sorted(k for k, v in json.loads(existing).items() if fingerprint.get(k) != v)
            store.close()
            raise AnnotatorError(
                f"run directory {run_dir} holds a different run (changed: {', '.join(changed)}); "
                "use another --run-dir or delete that one to start over"
            )
        return store

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def start_session(self) -> int:
        cur = self.conn.execute("INSERT INTO sessions(started_at) VALUES (?)", (now(),))
        self.session = int(cur.lastrowid)
        return self.session

    def finish_session(self) -> None:
        self.conn.execute("UPDATE sessions SET finished_at = ? WHERE id = ?", (now(), self.session))

    def processed_rows(self) -> dict[int, str]:
        """Row number -> text hash of every item already stored."""
        return {r["row"]: r["text_hash"] for r in self.conn.execute("SELECT row, text_hash FROM items")}

    def save_items(self, records: Iterable[ItemRecord]) -> None:
        """Insert one chunk's items in one transaction; an item stored before is an error, never a second label."""
        rows = [
            (r.row, r.item_id, r.text_hash, r.text, r.state, r.label, r.label_source, r.consensus_label, r.uncertainty,
             json.dumps(r.votes, sort_keys=True), r.reviewed_label, self.session, now())
            for r in records
        ]  # fmt: skip
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO items(row, item_id, text_hash, text, state, label, label_source, consensus_label,"
                " uncertainty, votes, reviewed_label, session, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def pending_review(self, rows: list[int] | None = None) -> list[ItemRecord]:
        """Hard items still waiting for a reviewer's answer, all of them or those among `rows`."""
        if rows is None:
            cursor = self.conn.execute("SELECT * FROM items WHERE state = 'pending_review' ORDER BY row")
            return [self._record(r) for r in cursor]
        wanted = set(rows)
        cursor = self.conn.execute(
            "SELECT * FROM items WHERE state = 'pending_review' AND row BETWEEN ? AND ? ORDER BY row", (min(rows), max(rows))
        )
        return [self._record(r) for r in cursor if r["row"] in wanted]

    def save_reviews(self, answers: Iterable[tuple[int, str, str | None, dict | None, dict]]) -> int:
        """Log (row, reviewer, label, probs, detail) answers and settle pending items that got a label.

        One transaction. An item is settled once: an answer for an item that is no longer pending
        is logged but changes nothing. Returns how many items were settled.
        """
        settled = 0
        with self.transaction() as conn:
            for row, reviewer, label, probs, detail in answers:
                conn.execute(
                    "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (row, reviewer, label, None if probs is None else json.dumps(probs), json.dumps(detail), self.session, now()),
                )
                if label is not None:
                    cur = conn.execute(
                        "UPDATE items SET state = 'done', label = ?, reviewed_label = ?, label_source = ?, updated_at = ?"
                        " WHERE row = ? AND state = 'pending_review'",
                        (label, label, reviewer, now(), row),
                    )
                    settled += cur.rowcount
        return settled

    def item(self, row: int) -> ItemRecord | None:
        found = self.conn.execute("SELECT * FROM items WHERE row = ?", (row,)).fetchone()
        return None if found is None else self._record(found)

    def log_review(self, row: int, reviewer: str, label: str | None, detail: dict | None = None) -> None:
        """Log an answer that does not settle the item on its own (the first of a double review)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, ?, ?, NULL, ?, ?, ?)",
                (row, reviewer, label, json.dumps(detail or {}), self.session, now()),
            )

    def count_by_state(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self.conn.execute("SELECT state, COUNT(*) AS n FROM items GROUP BY state")}

    def reopen(self, row: int, source: str) -> bool:
        """Undo a reviewer's answer: the item goes back to the review queue. Only answers from `source`."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE items SET state = 'pending_review', label = NULL, reviewed_label = NULL, label_source = 'unresolved',"
                " updated_at = ? WHERE row = ? AND state = 'done' AND label_source = ?",
                (now(), row, source),
            )
            if cur.rowcount:
                conn.execute(
                    "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, ?, NULL, NULL, ?, ?, ?)",
                    (row, source, json.dumps({"undo": True}), self.session, now()),
                )
        return bool(cur.rowcount)

    def lease_next(self, reviewer: str, seconds: float, *, exclude_answered_by: bool = False) -> ItemRecord | None:
        """Lease the first waiting item that nobody else holds (or whose lease expired) to `reviewer`.
        A reviewer who already holds a lease gets that item again. With `exclude_answered_by`, items this
        reviewer already answered (double review) are skipped."""
        now_s = time.time()
        with self.transaction() as conn:
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
            return self._record(conn.execute("SELECT * FROM items WHERE row = ?", (row,)).fetchone())

    def lease_holder(self, row: int) -> str | None:
        found = self.conn.execute("SELECT reviewer FROM leases WHERE row = ? AND expires_at > ?", (row, time.time())).fetchone()
        return None if found is None else found["reviewer"]

    def release(self, row: int, reviewer: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE row = ? AND reviewer = ?", (row, reviewer))

    def fingerprint(self) -> dict:
        return json.loads(self.get_meta("fingerprint") or "{}")

    def reviews(self, row: int) -> list[dict]:
        """Every answer logged for one item, oldest first."""
        cursor = self.conn.execute("SELECT * FROM reviews WHERE row = ? ORDER BY id", (row,))
        return [dict(r) | {"probs": json.loads(r["probs"]) if r["probs"] else None, "detail": json.loads(r["detail"] or "{}")} for r in cursor]

    def cache_get(self, key: str) -> dict | None:
        """A cached LLM response by request hash."""
        row = self.conn.execute("SELECT response FROM llm_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["response"])

    def record_llm_call(
        self, *, key: str, model: str, status: str, response: dict | None = None, prompt_tokens: int = 0,
        completion_tokens: int = 0, latency_s: float = 0.0, cost_usd: float = 0.0, error: str | None = None,
    ) -> None:  # fmt: skip
        """Log one call in the ledger; a paid response is cached in the same transaction, so it is never paid twice."""
        with self.transaction() as conn:
            if status == "paid" and response is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO llm_cache(key, model, response, created_at) VALUES (?, ?, ?, ?)",
                    (key, model, json.dumps(response), now()),
                )
            conn.execute(
                "INSERT INTO llm_calls(key, model, status, prompt_tokens, completion_tokens, latency_s, cost_usd, error,"
                " session, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model, status, prompt_tokens, completion_tokens, latency_s, cost_usd, error, self.session, now()),
            )

    def llm_usage(self) -> dict[str, dict[str, float]]:
        """Per model: paid calls, cache hits, failed attempts, tokens, $ and seconds, over every session."""
        usage: dict[str, dict[str, float]] = {}
        cursor = self.conn.execute(
            "SELECT model, status, COUNT(*) AS n, SUM(prompt_tokens) AS pt, SUM(completion_tokens) AS ct,"
            " SUM(cost_usd) AS cost, SUM(latency_s) AS secs FROM llm_calls GROUP BY model, status"
        )
        for r in cursor:
            entry = usage.setdefault(r["model"], dict.fromkeys(
                ["calls", "cache_hits", "failed", "prompt_tokens", "completion_tokens", "cost_usd", "seconds"], 0))  # fmt: skip
            entry[{"paid": "calls", "cached": "cache_hits", "failed": "failed"}[r["status"]]] += r["n"]
            entry["prompt_tokens"] += r["pt"] or 0
            entry["completion_tokens"] += r["ct"] or 0
            entry["cost_usd"] += r["cost"] or 0.0
            entry["seconds"] += r["secs"] or 0.0
        return usage

    def items(self) -> list[ItemRecord]:
        return [self._record(r) for r in self.conn.execute("SELECT * FROM items ORDER BY row")]

    def count_by_source(self) -> dict[str, int]:
        return {r["label_source"]: r["n"] for r in self.conn.execute("SELECT label_source, COUNT(*) AS n FROM items GROUP BY label_source")}

    def unresolved_states(self) -> dict[int, tuple[str, str | None]]:
        """Row -> (state, reason logged with its newest answer, or None) of every item without a label."""
        cursor = self.conn.execute(
            "WITH newest AS (SELECT row, MAX(id) AS id FROM reviews GROUP BY row)"
            " SELECT i.row, i.state, json_extract(r.detail, '$.reason') AS reason FROM items i"
            " LEFT JOIN newest ON newest.row = i.row LEFT JOIN reviews r ON r.id = newest.id WHERE i.label IS NULL"
        )
        return {r["row"]: (r["state"], r["reason"]) for r in cursor}

    def record_specialist(self, name: str, kind: str, path: str) -> int:
        """Register the first version of a specialist as the active one; returns its version number."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO specialists(name, version, kind, path, status, created_at) VALUES (?, 1, ?, ?, 'active', ?)",
                (name, kind, path, now()),
            )
        return 1

    def next_version(self, name: str) -> int:
        row = self.conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM specialists WHERE name = ?", (name,)).fetchone()
        return int(row["v"]) + 1

    def active_specialist(self, name: str) -> tuple[int, str] | None:
        """(version, path) of the specialist's active version."""
        row = self.conn.execute("SELECT version, path FROM specialists WHERE name = ? AND status = 'active'", (name,)).fetchone()
        return None if row is None else (row["version"], row["path"])

    def specialist_versions(self) -> list[dict]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM specialists ORDER BY name, version")]

    def rollback(self, name: str, version: int | None = None) -> int:
        """Make `version` (default: the newest one before the active) the active version of `name`."""
        active = self.active_specialist(name)
        if active is None:
            raise AnnotatorError(f"no specialist named '{name}' in this run")
        if version is None:
            row = self.conn.execute(
                "SELECT MAX(version) AS v FROM specialists WHERE name = ? AND version < ? AND status != 'rejected'",
                (name, active[0]),
            ).fetchone()
            if row["v"] is None:
                raise AnnotatorError(f"'{name}' has no earlier version to roll back to (active: v{active[0]})")
            version = int(row["v"])
        if not self.conn.execute("SELECT 1 FROM specialists WHERE name = ? AND version = ?", (name, version)).fetchone():
            raise AnnotatorError(f"'{name}' has no version {version}")
        with self.transaction() as conn:
            conn.execute("UPDATE specialists SET status = 'retired' WHERE name = ? AND status = 'active'", (name,))
            conn.execute("UPDATE specialists SET status = 'active' WHERE name = ? AND version = ?", (name, version))
        return version

    def labeled_by_review(self, *, used: bool | None = None, gate: bool = False) -> list[ItemRecord]:
        """Reviewed items (gold, llm or human): not yet used in a round (used=False), used, or all; gate or not."""
        where = "label_source IN ('gold', 'llm', 'human') AND state = 'done' AND gate = ?"
        if used is not None:
            where += " AND used_in_round IS " + ("NOT NULL" if used else "NULL")
        return [self._record(r) for r in self.conn.execute(f"SELECT * FROM items WHERE {where} ORDER BY row", (int(gate),))]

    def unanimous_consensus(self) -> list[ItemRecord]:
        """Items every specialist agreed on: the confident consensus that replay mixes in."""
        cursor = self.conn.execute("SELECT * FROM items WHERE label_source = 'consensus' AND uncertainty = 0 ORDER BY row")
        return [self._record(r) for r in cursor]

    def commit_round(self, *, pool_rows: list[int], gate_rows: list[int], train_size: int, seconds: float,
                     versions: list[dict]) -> int:  # fmt: skip
        """Record a finished refinement round in one transaction: the pool (`pool_rows` to train on plus
        `gate_rows` set aside) is used, the gate set aside for good,
        each candidate version saved as active (promoted) or rejected. Returns the round number."""
        with self.transaction() as conn:
            number = int(conn.execute("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM rounds").fetchone()["n"])
            conn.execute(
                "INSERT INTO rounds(id, pool_size, gate_size, train_size, seconds, details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (number, len(pool_rows) + len(gate_rows), len(gate_rows), train_size, seconds, json.dumps(versions), now()),
            )
            conn.executemany("UPDATE items SET used_in_round = ? WHERE row = ?", [(number, r) for r in pool_rows])
            conn.executemany("UPDATE items SET gate = 1, used_in_round = ? WHERE row = ?", [(number, r) for r in gate_rows])
            for v in versions:
                if v["promoted"]:
                    conn.execute("UPDATE specialists SET status = 'retired' WHERE name = ? AND status = 'active'", (v["name"],))
                conn.execute(
                    "INSERT INTO specialists(name, version, kind, path, status, round, gate_before, gate_after, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (v["name"], v["version"], v["kind"], v["path"], "active" if v["promoted"] else "rejected", number,
                     v["gate_before"], v["gate_after"], now()),
                )  # fmt: skip
        return number

    def rounds(self) -> list[dict]:
        return [dict(r) | {"details": json.loads(r["details"])} for r in self.conn.execute("SELECT * FROM rounds ORDER BY id")]

    def reroute(self, row: int, votes: dict, consensus_label: str | None, uncertainty: float) -> None:
        """Send a consensus item back to review with the refined pool's votes (its label flipped); the review
        log keeps a line saying so, with the old label."""
        with self.transaction() as conn:
            old = conn.execute("SELECT label FROM items WHERE row = ?", (row,)).fetchone()["label"]
            conn.execute(
                "INSERT INTO reviews(row, reviewer, label, probs, detail, session, created_at) VALUES (?, 'refine', NULL, NULL, ?, ?, ?)",
                (row, json.dumps({"rerouted": True, "old_label": old, "new_votes": votes}), self.session, now()),
            )
            conn.execute(
                "UPDATE items SET state = 'pending_review', label = NULL, label_source = 'unresolved', votes = ?,"
                " consensus_label = ?, uncertainty = ?, updated_at = ? WHERE row = ? AND label_source = 'consensus'",
                (json.dumps(votes, sort_keys=True), consensus_label, uncertainty, now(), row),
            )

    @staticmethod
    def _record(row: sqlite3.Row) -> ItemRecord:
        return ItemRecord(
            row=row["row"], item_id=row["item_id"], text_hash=row["text_hash"], state=row["state"], label=row["label"],
            label_source=row["label_source"], consensus_label=row["consensus_label"], uncertainty=row["uncertainty"],
            votes=json.loads(row["votes"]), reviewed_label=row["reviewed_label"], text=row["text"],
        )  # fmt: skip
