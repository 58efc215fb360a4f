"""Specialist versions and refinement rounds: which version of each specialist is active, and what each round did."""

from __future__ import annotations

import json

from autoannotator.errors import AnnotatorError
from autoannotator.store.database import Database, now


class SpecialistVersions:
    """The `specialists` and `rounds` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record_specialist(self, name: str, kind: str, path: str) -> int:
        """Register the first version of a specialist as the active one; returns its version number."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO specialists(name, version, kind, path, status, created_at) VALUES (?, 1, ?, ?, 'active', ?)",
                (name, kind, path, now()),
            )
        return 1

    def forget_all(self) -> None:
        """Drop every specialist version (their folders are overwritten when the pool is trained again)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM specialists")

    def next_version(self, name: str) -> int:
        row = self.db.conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM specialists WHERE name = ?", (name,)).fetchone()
        return int(row["v"]) + 1

    def active_specialist(self, name: str) -> tuple[int, str] | None:
        """(version, path) of the specialist's active version."""
        row = self.db.conn.execute("SELECT version, path FROM specialists WHERE name = ? AND status = 'active'", (name,)).fetchone()
        return None if row is None else (row["version"], row["path"])

    def specialist_versions(self) -> list[dict]:
        return [dict(r) for r in self.db.conn.execute("SELECT * FROM specialists ORDER BY name, version")]

    def rollback(self, name: str, version: int | None = None) -> int:
        """Make `version` (default: the newest one before the active) the active version of `name`."""
        conn = self.db.conn
        active = self.active_specialist(name)
        if active is None:
            raise AnnotatorError(f"no specialist named '{name}' in this run")
        if version is None:
            row = conn.execute(
                "SELECT MAX(version) AS v FROM specialists WHERE name = ? AND version < ? AND status != 'rejected'",
                (name, active[0]),
            ).fetchone()
            if row["v"] is None:
                raise AnnotatorError(f"'{name}' has no earlier version to roll back to (active: v{active[0]})")
            version = int(row["v"])
        if not conn.execute("SELECT 1 FROM specialists WHERE name = ? AND version = ?", (name, version)).fetchone():
            raise AnnotatorError(f"'{name}' has no version {version}")
        with self.db.transaction() as tx:
            tx.execute("UPDATE specialists SET status = 'retired' WHERE name = ? AND status = 'active'", (name,))
            tx.execute("UPDATE specialists SET status = 'active' WHERE name = ? AND version = ?", (name, version))
        return version

    def commit_round(self, *, pool_rows: list[int], gate_rows: list[int], train_size: int, seconds: float,
                     versions: list[dict], meta: dict[str, str] | None = None) -> int:  # fmt: skip
        """Record a finished refinement round in one transaction: the pool (`pool_rows` to train on plus
        `gate_rows` set aside) is used, the gate set aside for good,
        each candidate version saved as active (promoted) or rejected, and `meta` keys set (work that the
        round leaves to do, such as re-scoring). Returns the round number."""
        with self.db.transaction() as conn:
            for key, value in (meta or {}).items():
                self.db.set_meta(key, value)
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
        return [dict(r) | {"details": json.loads(r["details"])} for r in self.db.conn.execute("SELECT * FROM rounds ORDER BY id")]
