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

from autoannotator.errors import AnnotatorError
from autoannotator.store.run_state import RUN_STATE_SCHEMA

STORE_FILE = "run.sqlite"


def default_run_dir(output: Path) -> Path:
    """`labeled.csv` -> `labeled.csv.run/`: the run folder of an output file, so the same command always finds
    the same run store."""
    return output.with_name(output.name + ".run")
SCHEMA_VERSION = "8"  # 4: llm_calls.cost_usd may be NULL (unknown price); 5: items.unanimous, confidence, seed;
# 6: llm_calls rows written before a request is sent (status in_flight, then paid/failed/lost) and llm_calls.estimated;
# 7: items.audited (--audit); 8: typed run-state tables (store.run_state) and items.certificate, instead of meta JSON

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
    updated_at TEXT NOT NULL,
    unanimous INTEGER NOT NULL DEFAULT 0,
    confidence REAL,
    seed INTEGER NOT NULL DEFAULT 0,
    audited INTEGER NOT NULL DEFAULT 0,
    certificate INTEGER
);
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
    -- in_flight: written before the request is sent, at its worst case. lost: sent, no answer (timed out, cut
    -- off, unreadable), may have been billed, kept at its worst case. failed: refused with an error status, not billed
    status TEXT NOT NULL CHECK (status IN ('paid', 'cached', 'failed', 'in_flight', 'lost')),
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    cost_usd REAL DEFAULT 0,  -- NULL: the model's price is unknown (not in the price table)
    error TEXT,
    session INTEGER,
    created_at TEXT NOT NULL,
    estimated INTEGER NOT NULL DEFAULT 0  -- 1: tokens and $ are the request's worst case, not the server's usage
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

# What a store of version 4 lacks: "all voters agreed", the voters' mean confidence and the seed flag per item
# (filled in from the votes and the seed_rows meta key by `_upgrade_4_to_5`).
UPGRADE_4_TO_5 = """
ALTER TABLE items ADD COLUMN unanimous INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN confidence REAL;
ALTER TABLE items ADD COLUMN seed INTEGER NOT NULL DEFAULT 0;
"""

# What a store of version 6 lacks: the audit flag (no earlier run audited).
UPGRADE_6_TO_7 = "ALTER TABLE items ADD COLUMN audited INTEGER NOT NULL DEFAULT 0"
# What a store of version 7 lacks: which certificate accepted each item (the run-state tables are created with it).
UPGRADE_7_TO_8 = "ALTER TABLE items ADD COLUMN certificate INTEGER"
LEGACY_TARGET_KEY = "target_accuracy"  # version 7's meta JSON of --target-accuracy (moved into the typed tables)
LEGACY_PROBE_KEYS = ("reviewer_probe", "reviewer_probe_baseline")  # version 7's probe: asked again from the reviewer's cache

# Indexes that keep each chunk's store work independent of the run's length: refinement's trigger counts
# reviewed items not yet used, replay samples unanimous items, re-scoring walks shaky consensus items,
# the review page reads one item's answers.
INDEXES = """
CREATE INDEX IF NOT EXISTS items_state ON items(state);
CREATE INDEX IF NOT EXISTS items_reviewed_unused ON items(row) WHERE state = 'done'
    AND label_source IN ('gold', 'llm', 'human') AND seed = 0 AND gate = 0 AND used_in_round IS NULL;
CREATE INDEX IF NOT EXISTS items_unanimous ON items(row) WHERE label_source = 'consensus' AND unanimous = 1;
CREATE INDEX IF NOT EXISTS items_consensus ON items(row, confidence) WHERE label_source = 'consensus';
CREATE INDEX IF NOT EXISTS reviews_row ON reviews(row);
CREATE INDEX IF NOT EXISTS reviews_answers ON reviews(reviewer, row) WHERE label IS NOT NULL;
"""


def statements(script: str) -> list[str]:
    """The SQL statements of a script (one per `;`), to run inside a transaction (executescript would commit)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def mean_confidence(votes: dict) -> float:
    """The voters' mean top probability (1.0 with no voter): what `--rescore-below` compares."""
    return sum(v["p"] for v in votes.values()) / len(votes) if votes else 1.0


def all_agreed(votes: dict) -> bool:
    """Every voter voted (none abstained) and for the same label."""
    labels = {v["label"] for v in votes.values()}
    return bool(votes) and len(labels) == 1 and None not in labels


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
        self.session: int | None = None
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise AnnotatorError(f"{path} is not a run store ({exc})") from None
        except AnnotatorError:
            self.conn.close()
            raise

    def _schema_version(self) -> str | None:
        """The store's schema version; None for a new, empty file."""
        tables = {r["name"] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return None
        if "meta" not in tables or "items" not in tables:
            raise AnnotatorError(f"{self.path} is not a run store (it holds other tables: {', '.join(sorted(tables))})")
        return self.get_meta("schema_version") or "3"  # version 3 wrote its version only along with a fingerprint

    def _check_schema(self) -> None:
        """Create the schema in a new file, upgrade a store of version 3 to 7, refuse any other version with one line."""
        if self._schema_version() == SCHEMA_VERSION:
            return
        with self.transaction() as conn:
            version = self._schema_version()  # again, under the write lock: another process may have done it
            if version is None:
                for statement in statements(SCHEMA):
                    conn.execute(statement)
            elif version in ("3", "4", "5", "6", "7"):
                if version in ("3", "4"):
                    self._upgrade_4_to_5()
                if version != "6":
                    self._rebuild_llm_calls()
                columns = {r["name"] for r in conn.execute("PRAGMA table_info(items)")}
                if "audited" not in columns:
                    conn.execute(UPGRADE_6_TO_7)
                if "certificate" not in columns:
                    conn.execute(UPGRADE_7_TO_8)
                for statement in statements(RUN_STATE_SCHEMA):
                    conn.execute(statement)
                self._move_target_meta()
            elif version != SCHEMA_VERSION:
                raise AnnotatorError(
                    f"the run store {self.path} has schema version {version}, this AutoAnnotator reads version {SCHEMA_VERSION} "
                    "(and upgrades versions 3 to 7): use the AutoAnnotator that wrote it, or another --run-dir"
                )
            if version is None:
                for statement in statements(RUN_STATE_SCHEMA):
                    conn.execute(statement)
            for statement in statements(INDEXES):
                conn.execute(statement)
            self.set_meta("schema_version", SCHEMA_VERSION)

    def _move_target_meta(self) -> None:
        """Version 7 -> 8 inside the caller's transaction: the --target-accuracy state kept as meta JSON becomes a
        certificate (fitted on unknown specialist versions: {}), the state in force and the guard's events; the
        probe's meta is dropped (a resumed run asks the probe again, answered from the reviewer's cache at no cost)."""
        from autoannotator.store.run_state import GuardEvent, RunStateTables

        kept = json.loads(self.get_meta(LEGACY_TARGET_KEY) or "null")
        if kept and kept.get("certificate"):
            tables = RunStateTables(self)
            folder = Path(kept["aggregator"])  # version 7 kept the folder's absolute path; the run state keeps it relative to the run
            relative = str(folder.relative_to(self.path.parent)) if folder.is_absolute() and folder.is_relative_to(self.path.parent) else str(folder)
            record = tables.add_certificate(relative, {}, kept["certificate"])
            tables.set_target_state(record.id, kept.get("threshold"))
            if record.threshold is not None:  # the items that certificate accepted
                self.conn.execute("UPDATE items SET certificate = ? WHERE consensus_label IS NOT NULL AND uncertainty <= ? "
                                  "AND (label_source = 'consensus' OR audited = 1)", (record.id, record.threshold + 1e-12))  # fmt: skip
            for event in kept.get("guard", []):
                tables.add_guard_event(GuardEvent(event["after_items"], event["n_audited"], event["audited_accuracy"],
                                                  event["threshold_before"], event["threshold_after"]))  # fmt: skip
        for key in (LEGACY_TARGET_KEY, *LEGACY_PROBE_KEYS):
            self.delete_meta(key)

    def _rebuild_llm_calls(self) -> None:
        """Versions 3, 4, 5 -> 6 inside the caller's transaction: `llm_calls` as version 6 has it (4: `cost_usd`
        may be NULL; 6: statuses `in_flight` and `lost`, column `estimated`). SQLite changes a column's
        constraint only by rebuilding the table; the rows keep their values (`estimated` 0)."""
        create = next(s for s in statements(SCHEMA) if s.startswith("CREATE TABLE IF NOT EXISTS llm_calls "))
        columns = ", ".join(r["name"] for r in self.conn.execute("PRAGMA table_info(llm_calls)"))
        self.conn.execute(create.replace("llm_calls ", "llm_calls_6 ", 1))
        self.conn.execute(f"INSERT INTO llm_calls_6({columns}) SELECT {columns} FROM llm_calls")
        self.conn.execute("DROP TABLE llm_calls")
        self.conn.execute("ALTER TABLE llm_calls_6 RENAME TO llm_calls")

    def _upgrade_4_to_5(self) -> None:
        """Version 4 -> 5 inside the caller's transaction: new item columns, filled in from what version 4 kept."""
        conn = self.conn
        for statement in statements(UPGRADE_4_TO_5):
            conn.execute(statement)
        updates = []
        for r in conn.execute("SELECT row, votes FROM items").fetchall():
            votes = json.loads(r["votes"])
            updates.append((int(all_agreed(votes)), mean_confidence(votes), r["row"]))
        conn.executemany("UPDATE items SET unanimous = ?, confidence = ? WHERE row = ?", updates)
        seed_rows = json.loads(self.get_meta("seed_rows") or "[]")
        conn.executemany("UPDATE items SET seed = 1 WHERE row = ?", [(r,) for r in seed_rows])

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

    def delete_meta(self, key: str) -> None:
        self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))

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
