"""The run state that routing decisions depend on, as typed tables (schema version 8).

- `certificates`: every --target-accuracy certificate the run made (one per aggregator it fitted: the first fit,
  then one per refinement refit), with the specialist versions the aggregator was fitted on.
- `target_state`: one row, the certificate in force and the threshold in force (a guard may lower it).
- `guard_events`: each time the audit guard declared the promise broken, with its test statistic.
- `probes` / `probe_items`: the reviewer probe's answers, keyed by the reviewer's identity (kind, model, base URL,
  prompt, shots), so one reviewer's measured confusion is never applied to another.

Items record which certificate accepted them (`items.certificate`), so the summary can state each certificate's
promise and the union bound over all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import autoannotator.store.database as database  # database.py imports this module's schema: names are read at call time
from autoannotator.target_accuracy import Certificate

if TYPE_CHECKING:
    from autoannotator.store.database import Database


RUN_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregator TEXT NOT NULL,
    versions TEXT NOT NULL,
    target REAL NOT NULL,
    confidence REAL NOT NULL,
    threshold REAL,
    n_calibration INTEGER NOT NULL,
    seed_accepted_share REAL NOT NULL,
    seed_accuracy REAL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS target_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    certificate INTEGER REFERENCES certificates(id),
    threshold REAL
);
CREATE TABLE IF NOT EXISTS guard_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    after_items INTEGER NOT NULL,
    n_audited INTEGER NOT NULL,
    audited_accuracy REAL NOT NULL,
    threshold_before REAL,
    threshold_after REAL,
    statistic REAL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS probes (
    reviewer_key TEXT PRIMARY KEY,
    reviewer TEXT NOT NULL,
    requested INTEGER NOT NULL,
    labels TEXT NOT NULL,
    label_counts TEXT,
    cost_usd REAL,
    calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS probe_items (
    reviewer_key TEXT NOT NULL REFERENCES probes(reviewer_key) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    seed_index INTEGER NOT NULL,
    true_label INTEGER NOT NULL,
    answer INTEGER NOT NULL,
    pool_label INTEGER NOT NULL,
    uncertain INTEGER NOT NULL,
    uncertainty REAL,
    PRIMARY KEY (reviewer_key, position)
)
"""


@dataclass(frozen=True)
class CertificateRecord:
    """One stored certificate: `id`, the aggregator folder (relative to the run) and the specialist versions
    ({name: version}) it was fitted on, and the certificate itself (`certificate.threshold` None: nothing certified)."""

    id: int
    aggregator: str
    versions: dict[str, int]
    certificate: Certificate

    @property
    def threshold(self) -> float | None:
        return self.certificate.threshold

    def figures(self) -> dict:
        """The certificate as the summary shows it (`target_accuracy.Certificate.to_dict()` and its id)."""
        return {"id": self.id} | self.certificate.to_dict()


@dataclass(frozen=True)
class GuardEvent:
    """The audit guard declared the promise broken after `after_items` items: `n_audited` answered audited items
    under `threshold_before` agreed `audited_accuracy` of the time; `statistic`: the test's e-value (see
    `audit.judge`); `threshold_after` None: every item goes to review from then on."""

    after_items: int
    n_audited: int
    audited_accuracy: float
    threshold_before: float | None
    threshold_after: float | None
    statistic: float | None = None

    def to_dict(self) -> dict:
        return {"after_items": self.after_items, "n_audited": self.n_audited, "audited_accuracy": self.audited_accuracy,
                "threshold_before": self.threshold_before, "threshold_after": self.threshold_after, "statistic": self.statistic}  # fmt: skip


@dataclass(frozen=True)
class ProbeRow:
    """One probed seed item: its seed index, true label index, the reviewer's answer index (-1: none), the pool's
    out-of-fold label index, whether the pool found it uncertain, and the pool's out-of-fold U."""

    seed_index: int
    true_label: int
    answer: int
    pool_label: int
    uncertain: bool
    uncertainty: float | None = None


@dataclass(frozen=True)
class ProbeRecord:
    """A stored probe: who was probed (`reviewer_key`, a hash of its identity; `reviewer`, that identity as
    JSON), how many items were asked for, the labels, (n_labels,) the seed's items per label, what it cost
    (USD: None when a price is unknown; paid calls, tokens, seconds) and its rows."""

    reviewer_key: str
    reviewer: str
    requested: int
    labels: list[str]
    label_counts: list[int] | None
    cost_usd: float | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    rows: list[ProbeRow]


class RunStateTables:
    """Typed reads and writes of the run-state tables over the store's connection. Writes go inside the caller's
    transaction when one is open (`Database.transaction`), else in their own."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def forget_all(self) -> None:
        """Inside the caller's transaction: drop the run state made under earlier settings (an `estimate` whose
        settings a run replaced): certificates, the state in force, guard events, probes, and the meta keys that
        name the active aggregator, so the run fits, certifies and probes under its own settings (the LLM cache
        answers a probe asked again at no cost)."""
        for table in ("target_state", "guard_events", "certificates", "probe_items", "probes"):
            self.db.conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
        for key in ("aggregator", "aggregator_versions", "aggregator_n_seed", "reviewer_probe_baseline", "reviewer_worth"):
            self.db.delete_meta(key)

    def add_certificate(self, aggregator: str, versions: dict[str, int], figures: dict) -> CertificateRecord:
        """Store a certificate (`figures`: `target_accuracy.Certificate.to_dict()`) and return it with its id."""
        cur = self.db.conn.execute(
            "INSERT INTO certificates(aggregator, versions, target, confidence, threshold, n_calibration, seed_accepted_share, "
            "seed_accuracy, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (aggregator, json.dumps(versions, sort_keys=True), figures["target"], figures["confidence"], figures["threshold"],
             figures["n_calibration"], figures["seed_accepted_share"], figures["seed_accuracy"], database.now()),
        )  # fmt: skip
        return self.certificate(int(cur.lastrowid))

    def certificate(self, certificate_id: int) -> CertificateRecord:
        """The stored certificate `certificate_id`; raises KeyError when there is none."""
        row = self.db.conn.execute("SELECT * FROM certificates WHERE id = ?", (certificate_id,)).fetchone()
        if row is None:
            raise KeyError(certificate_id)
        return _certificate(row)

    def certificates(self) -> list[CertificateRecord]:
        """Every certificate the run made, oldest first."""
        return [_certificate(r) for r in self.db.conn.execute("SELECT * FROM certificates ORDER BY id")]

    def target_state(self) -> tuple[CertificateRecord | None, float | None]:
        """(the certificate in force, the threshold in force); (None, None) before any certificate."""
        row = self.db.conn.execute("SELECT certificate, threshold FROM target_state WHERE id = 1").fetchone()
        if row is None or row["certificate"] is None:
            return None, None
        return self.certificate(int(row["certificate"])), row["threshold"]

    def set_target_state(self, certificate_id: int, threshold: float | None) -> None:
        """Put `certificate_id` and `threshold` in force."""
        self.db.conn.execute(
            "INSERT INTO target_state(id, certificate, threshold) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET certificate = excluded.certificate, threshold = excluded.threshold",
            (certificate_id, threshold),
        )

    def add_guard_event(self, event: GuardEvent) -> None:
        """Keep one guard event."""
        self.db.conn.execute(
            "INSERT INTO guard_events(after_items, n_audited, audited_accuracy, threshold_before, threshold_after, statistic, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.after_items, event.n_audited, event.audited_accuracy, event.threshold_before, event.threshold_after, event.statistic, database.now()),
        )  # fmt: skip

    def guard_events(self) -> list[GuardEvent]:
        """The guard's events, oldest first."""
        return [GuardEvent(r["after_items"], r["n_audited"], r["audited_accuracy"], r["threshold_before"], r["threshold_after"], r["statistic"])
                for r in self.db.conn.execute("SELECT * FROM guard_events ORDER BY id")]  # fmt: skip

    def certificates_used(self) -> dict[int, int]:
        """{certificate id: items it accepted} over the items accepted by consensus (audited ones included)."""
        rows = self.db.conn.execute("SELECT certificate, COUNT(*) AS n FROM items WHERE certificate IS NOT NULL GROUP BY certificate")
        return {int(r["certificate"]): int(r["n"]) for r in rows}

    def save_probe(self, probe: ProbeRecord) -> None:
        """Keep (replace) the probe of `probe.reviewer_key`."""
        conn = self.db.conn
        conn.execute("DELETE FROM probe_items WHERE reviewer_key = ?", (probe.reviewer_key,))
        conn.execute("DELETE FROM probes WHERE reviewer_key = ?", (probe.reviewer_key,))
        conn.execute(
            "INSERT INTO probes(reviewer_key, reviewer, requested, labels, label_counts, cost_usd, calls, prompt_tokens, completion_tokens, "
            "seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (probe.reviewer_key, probe.reviewer, probe.requested, json.dumps(probe.labels),
             None if probe.label_counts is None else json.dumps(probe.label_counts), probe.cost_usd, probe.calls, probe.prompt_tokens,
             probe.completion_tokens, probe.seconds, database.now()),
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO probe_items(reviewer_key, position, seed_index, true_label, answer, pool_label, uncertain, uncertainty) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(probe.reviewer_key, i, r.seed_index, r.true_label, r.answer, r.pool_label, int(r.uncertain), r.uncertainty)
             for i, r in enumerate(probe.rows)],
        )

    def probe(self, reviewer_key: str | None = None) -> ProbeRecord | None:
        """The probe of `reviewer_key` (None: the newest probe of any reviewer); None when there is none."""
        conn = self.db.conn
        if reviewer_key is None:
            row = conn.execute("SELECT * FROM probes ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
        else:
            row = conn.execute("SELECT * FROM probes WHERE reviewer_key = ?", (reviewer_key,)).fetchone()
        if row is None:
            return None
        rows = [ProbeRow(r["seed_index"], r["true_label"], r["answer"], r["pool_label"], bool(r["uncertain"]), r["uncertainty"])
                for r in conn.execute("SELECT * FROM probe_items WHERE reviewer_key = ? ORDER BY position", (row["reviewer_key"],))]  # fmt: skip
        return ProbeRecord(
            reviewer_key=row["reviewer_key"], reviewer=row["reviewer"], requested=row["requested"], labels=json.loads(row["labels"]),
            label_counts=None if row["label_counts"] is None else json.loads(row["label_counts"]), cost_usd=row["cost_usd"],
            calls=row["calls"], prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"], seconds=row["seconds"], rows=rows,
        )  # fmt: skip


def _certificate(row) -> CertificateRecord:
    certificate = Certificate(target=row["target"], confidence=row["confidence"], threshold=row["threshold"], n_calibration=row["n_calibration"],
                              seed_accepted_share=row["seed_accepted_share"], seed_accuracy=row["seed_accuracy"])  # fmt: skip
    return CertificateRecord(id=int(row["id"]), aggregator=row["aggregator"], versions=json.loads(row["versions"]), certificate=certificate)
