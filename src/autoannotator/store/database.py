"""The run store's one SQLite connection (WAL): schema, transactions, run metadata and sessions.

Every part of the store (items, reviews, LLM ledger, specialist versions) works through one `Database`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

STORE_FILE = "run.sqlite"
SCHEMA_VERSION = "4"  # 4: llm_calls.cost_usd may be NULL (unknown price)

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
    cost_usd REAL DEFAULT 0,  -- NULL: the model's price is unknown (not in the price table)
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
    """The current UTC time as ISO 8601 to the second (the store's timestamps)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Database:
    """One SQLite connection to a run store file, with its schema in place.

    Other threads may use the connection (check_same_thread off): the LLM client may run on a worker
    thread while the caller's thread waits (inside a running event loop, e.g. Jupyter), and the review
    page's request threads share it. Callers never use it from two threads at once (the page holds a lock).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        self.session: int | None = None

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

    def record_seconds(self, seconds: dict[str, float]) -> None:
        """Keep where this session's time went (seconds per stage: fit, predict, review, ...) for the report."""
        with self.transaction():
            self.set_meta(f"seconds:{self.session}", json.dumps(seconds, sort_keys=True))

    def seconds_by_stage(self) -> dict[str, float]:
        """Seconds per stage, added up over every session that recorded them."""
        total: dict[str, float] = {}
        for r in self.conn.execute("SELECT value FROM meta WHERE key LIKE 'seconds:%'"):
            for stage, value in json.loads(r["value"]).items():
                total[stage] = total.get(stage, 0.0) + float(value)
        return total
