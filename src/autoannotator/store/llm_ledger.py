"""The LLM cache and ledger: responses by request hash, and every call with its tokens, $ and seconds."""

from __future__ import annotations

import json

from autoannotator.store.database import Database, now

USAGE_FIELDS = ("calls", "cache_hits", "failed", "lost", "estimated", "prompt_tokens", "completion_tokens", "cost_usd", "seconds")
COUNTED = {"paid": "calls", "cached": "cache_hits", "failed": "failed", "lost": "lost", "in_flight": "lost"}


class LLMLedger:
    """The `llm_cache` and `llm_calls` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def cache_get(self, key: str) -> dict | None:
        """A cached LLM response by request hash."""
        row = self.db.conn.execute("SELECT response FROM llm_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["response"])

    def record_llm_call(
        self, *, key: str, model: str, status: str, response: dict | None = None, prompt_tokens: int = 0,
        completion_tokens: int = 0, latency_s: float = 0.0, cost_usd: float | None = 0.0, error: str | None = None,
    ) -> None:  # fmt: skip
        """Log one call in the ledger; a paid response is cached in the same transaction, so it is never paid twice.
        `cost_usd` is None when the model's price is unknown."""
        with self.db.transaction() as conn:
            if status == "paid" and response is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO llm_cache(key, model, response, created_at) VALUES (?, ?, ?, ?)",
                    (key, model, json.dumps(response), now()),
                )
            conn.execute(
                "INSERT INTO llm_calls(key, model, status, prompt_tokens, completion_tokens, latency_s, cost_usd, error,"
                " session, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model, status, prompt_tokens, completion_tokens, latency_s, cost_usd, error, self.db.session, now()),
            )

    def reserve_llm_call(self, *, key: str, model: str, prompt_tokens: int, completion_tokens: int, cost_usd: float | None) -> int:
        """Write a request at its worst case (tokens, USD; None: price unknown) as `in_flight`, committed before
        it is sent: if the session dies, every later session counts it. Returns the row's id for `finish_llm_call`."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO llm_calls(key, model, status, prompt_tokens, completion_tokens, cost_usd, session, created_at, estimated)"
                " VALUES (?, ?, 'in_flight', ?, ?, ?, ?, ?, 1)",
                (key, model, prompt_tokens, completion_tokens, cost_usd, self.db.session, now()),
            )
        return int(cur.lastrowid)

    def finish_llm_call(
        self, call_id: int, *, status: str, response: dict | None = None, prompt_tokens: int | None = None,
        completion_tokens: int | None = None, cost_usd: float | None = None, estimated: bool = False,
        latency_s: float = 0.0, error: str | None = None,
    ) -> None:  # fmt: skip
        """End a reserved request: `paid` (its response cached in the same transaction, with the server's usage
        or, `estimated`, the worst case), `failed` (refused with an error status: 0 tokens, $0) or `lost` (sent
        without an answer: it keeps its worst case)."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT key, model FROM llm_calls WHERE id = ?", (call_id,)).fetchone()
            if status == "paid" and response is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO llm_cache(key, model, response, created_at) VALUES (?, ?, ?, ?)",
                    (row["key"], row["model"], json.dumps(response), now()),
                )
            if status == "failed":
                prompt_tokens, completion_tokens, cost_usd, estimated = 0, 0, 0.0, False
            if status == "lost":
                conn.execute("UPDATE llm_calls SET status = 'lost', latency_s = ?, error = ? WHERE id = ?", (latency_s, error, call_id))
                return
            conn.execute(
                "UPDATE llm_calls SET status = ?, prompt_tokens = ?, completion_tokens = ?, cost_usd = ?, estimated = ?,"
                " latency_s = ?, error = ? WHERE id = ?",
                (status, prompt_tokens, completion_tokens, cost_usd, int(estimated), latency_s, error, call_id),
            )

    def llm_usage(self) -> dict[str, dict[str, float | None]]:
        """Per model, over every session: paid calls (`estimated`: how many of them had no plausible usage and count
        at their worst case), cache hits, failed attempts (refused, not billed), `lost` requests (sent but never
        answered: timed out, cut off, or in flight when a session was killed; each counts at its worst case),
        tokens, $ and seconds. `cost_usd` is None (unknown, never 0) when any call of the model had no price."""
        usage: dict[str, dict[str, float | None]] = {}
        cursor = self.db.conn.execute(
            "SELECT model, status, COUNT(*) AS n, SUM(prompt_tokens) AS pt, SUM(completion_tokens) AS ct,"
            " SUM(cost_usd) AS cost, SUM(cost_usd IS NULL) AS unpriced, SUM(latency_s) AS secs, SUM(estimated) AS est"
            " FROM llm_calls GROUP BY model, status"
        )
        unknown: set[str] = set()
        for r in cursor:
            entry = usage.setdefault(r["model"], dict.fromkeys(USAGE_FIELDS, 0))
            entry[COUNTED[r["status"]]] += r["n"]
            if r["status"] == "paid":
                entry["estimated"] += r["est"] or 0
            entry["prompt_tokens"] += r["pt"] or 0
            entry["completion_tokens"] += r["ct"] or 0
            entry["cost_usd"] += r["cost"] or 0.0
            entry["seconds"] += r["secs"] or 0.0
            if r["unpriced"]:
                unknown.add(r["model"])
        for model in unknown:
            usage[model]["cost_usd"] = None
        return usage

    def llm_latencies(self) -> dict[str, list[float]]:
        """Per model, the latency in seconds of every paid call (cache hits and failures left out)."""
        latencies: dict[str, list[float]] = {}
        for r in self.db.conn.execute("SELECT model, latency_s FROM llm_calls WHERE status = 'paid' ORDER BY id"):
            latencies.setdefault(r["model"], []).append(float(r["latency_s"]))
        return latencies
