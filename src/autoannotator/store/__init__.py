"""The run store: one SQLite file (WAL) per run directory, the single source of truth of a run.

It holds each processed item (id, text hash, votes, final label and where it came from), the reviewers'
answers and leases, the LLM cache and cost ledger, the specialist versions in use and the refinement
rounds, and the run's fingerprint, so a killed run resumes where it stopped. One part per concern
(`records`, `review_log`, `llm`, `versions`), all over one connection (`db`); `RunStore` offers each
part's methods under their own names too.
"""

from __future__ import annotations

from autoannotator.store.database import SCHEMA_VERSION, STORE_FILE, Database, now
from autoannotator.store.items import COMBINED_SOURCE, ItemRecord, ItemTable
from autoannotator.store.llm_ledger import LLMLedger
from autoannotator.store.reviews import ReviewLog
from autoannotator.store.run_store import RunStore
from autoannotator.store.versions import SpecialistVersions

__all__ = [
    "COMBINED_SOURCE", "SCHEMA_VERSION", "STORE_FILE", "Database", "ItemRecord", "ItemTable", "LLMLedger", "ReviewLog", "RunStore",
    "SpecialistVersions", "now",
]  # fmt: skip
