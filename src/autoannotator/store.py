"""The run store: one SQLite file (WAL) per run directory, the single source of truth of a run.

It holds each processed item (id, text hash, votes, final label and where it came from), the
specialist versions in use and the run's fingerprint, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from autoannotator.errors import AnnotatorError

STORE_FILE = "run.sqlite"
SCHEMA_VERSION = "1"

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
    state TEXT NOT NULL CHECK (state IN ('done', 'pending_review', 'skipped')),
    label TEXT,
    label_source TEXT NOT NULL CHECK (label_source IN ('consensus', 'llm', 'human', 'gold', 'unresolved')),
    consensus_label TEXT,
    uncertainty REAL,
    votes TEXT NOT NULL,
    reviewed_label TEXT,
    session INTEGER NOT NULL REFERENCES sessions(id),
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_state ON items(state);
CREATE TABLE IF NOT EXISTS specialists (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
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


class RunStore:
    """A SQLite run store in `run_dir`; open it with `RunStore.open(run_dir, fingerprint)`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
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
            (r.row, r.item_id, r.text_hash, r.state, r.label, r.label_source, r.consensus_label, r.uncertainty,
             json.dumps(r.votes, sort_keys=True), r.reviewed_label, self.session, now())
            for r in records
        ]  # fmt: skip
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO items(row, item_id, text_hash, state, label, label_source, consensus_label, uncertainty,"
                " votes, reviewed_label, session, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    def save_reviews(self, answers: Iterable[tuple[int, str, str]]) -> None:
        """Record (row, label, source) answers for pending items in one transaction."""
        with self.transaction() as conn:
            conn.executemany(
                "UPDATE items SET state = 'done', label = ?, reviewed_label = ?, label_source = ?, updated_at = ?"
                " WHERE row = ? AND state = 'pending_review'",
                [(label, label, source, now(), row) for row, label, source in answers],
            )

    def items(self) -> list[ItemRecord]:
        return [self._record(r) for r in self.conn.execute("SELECT * FROM items ORDER BY row")]

    def count_by_source(self) -> dict[str, int]:
        return {r["label_source"]: r["n"] for r in self.conn.execute("SELECT label_source, COUNT(*) AS n FROM items GROUP BY label_source")}

    def record_specialist(self, name: str, kind: str, path: str) -> int:
        """Register a new version of a specialist's saved files; returns the version number."""
        with self.transaction() as conn:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM specialists WHERE name = ?", (name,)).fetchone()
            version = int(row["v"]) + 1
            conn.execute(
                "INSERT INTO specialists(name, version, kind, path, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, version, kind, path, now()),
            )
        return version

    def latest_specialist_path(self, name: str) -> str | None:
        row = self.conn.execute("SELECT path FROM specialists WHERE name = ? ORDER BY version DESC LIMIT 1", (name,)).fetchone()
        return None if row is None else row["path"]

    @staticmethod
    def _record(row: sqlite3.Row) -> ItemRecord:
        return ItemRecord(
            row=row["row"], item_id=row["item_id"], text_hash=row["text_hash"], state=row["state"], label=row["label"],
            label_source=row["label_source"], consensus_label=row["consensus_label"], uncertainty=row["uncertainty"],
            votes=json.loads(row["votes"]), reviewed_label=row["reviewed_label"],
        )  # fmt: skip
