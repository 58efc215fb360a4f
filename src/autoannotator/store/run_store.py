"""`RunStore`: the four parts of the run store over one connection, opened for one run."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from autoannotator.errors import AnnotatorError
from autoannotator.store.database import STORE_FILE, Database
from autoannotator.store.items import ItemTable
from autoannotator.store.llm_ledger import LLMLedger
from autoannotator.store.reviews import ReviewLog
from autoannotator.store.run_state import RunStateTables
from autoannotator.store.versions import SpecialistVersions

# Fingerprint parts the trained pool depends on: a change drops the pool an `estimate` saved.
POOL_SETTINGS = frozenset({"task", "specialists", "seed", "seed_label", "input", "random_seed"})
P = ParamSpec("P")
R = TypeVar("R")


def _forward(part: str, method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[RunStore, P], R]:
    """`RunStore.<name>(...)` calls `<part>.<name>(...)`: one connection, each concern in its own part."""

    @functools.wraps(method)
    def forwarded(self: RunStore, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(getattr(self, part), *args, **kwargs)

    return forwarded


def _named(key: str, before: Any, after: Any) -> str:
    """A changed fingerprint part, with the settings inside it that changed (`consensus (budget 0.2 -> 0.3)`): the
    consensus part holds the flags --rule, --epsilon, --budget, --target-accuracy, --confidence and --audit."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return key
    inner = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if not inner or key not in ("consensus",):
        return key
    flags = [f"--{k.replace('_', '-')} {before.get(k)} -> {after.get(k)}" for k in inner]
    return f"{key} ({', '.join(flags)})"


class RunStore:
    """A SQLite run store at `path`; open a run's store with `RunStore.open(run_dir, fingerprint)`.

    Parts: `records` (items and provenance), `review_log` (reviews and leases), `llm` (LLM cache and
    ledger), `versions` (specialist versions and rounds), `state` (the typed run state: certificates, guard events,
    probes), all on `db`, the one connection.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = Database(path)
        self.records = ItemTable(self.db)
        self.review_log = ReviewLog(self.db)
        self.llm = LLMLedger(self.db)
        self.versions = SpecialistVersions(self.db)
        self.state = RunStateTables(self.db)

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
                store.set_meta("fingerprint", wanted)
        elif existing != wanted and store._only_estimated():
            changed = {k for k, v in json.loads(existing).items() if fingerprint.get(k) != v}
            with store.transaction():  # nothing labeled or paid yet (an `estimate` made it): take the new settings
                store.set_meta("fingerprint", wanted)
                store.delete_meta("estimate")
                store.state.forget_all()  # the estimate's aggregator, certificate and probe belong to its settings
            if changed & POOL_SETTINGS:
                store.versions.forget_all()
        elif existing != wanted:
            before = json.loads(existing)
            changed = sorted(k for k in before.keys() | fingerprint.keys() if fingerprint.get(k) != before.get(k))
            store.close()
            raise AnnotatorError(
                f"run directory {run_dir} holds a different run (changed: {', '.join(_named(k, before.get(k), fingerprint.get(k)) for k in changed)}); "
                "use another --run-dir or delete that one to start over"
            )
        return store

    def _only_estimated(self) -> bool:
        """Only what `estimate` leaves (its figures and a trained pool): no item stored, no LLM call made."""
        return self.get_meta("estimate") is not None and not self.processed_rows() and not self.llm_usage()

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    @property
    def session(self) -> int | None:
        return self.db.session

    def fingerprint(self) -> dict:
        return json.loads(self.get_meta("fingerprint") or "{}")

    close = _forward("db", Database.close)
    transaction = _forward("db", Database.transaction)
    get_meta = _forward("db", Database.get_meta)
    set_meta = _forward("db", Database.set_meta)
    delete_meta = _forward("db", Database.delete_meta)
    start_session = _forward("db", Database.start_session)
    finish_session = _forward("db", Database.finish_session)
    record_seconds = _forward("db", Database.record_seconds)
    seconds_by_stage = _forward("db", Database.seconds_by_stage)

    processed_rows = _forward("records", ItemTable.processed_rows)
    save_items = _forward("records", ItemTable.save_items)
    pending_review = _forward("records", ItemTable.pending_review)
    item = _forward("records", ItemTable.item)
    items = _forward("records", ItemTable.items)
    uncertainties = _forward("records", ItemTable.uncertainties)
    row_ids = _forward("records", ItemTable.row_ids)
    count_by_state = _forward("records", ItemTable.count_by_state)
    count_labeled = _forward("records", ItemTable.count_labeled)
    count_by_source = _forward("records", ItemTable.count_by_source)
    count_routed = _forward("records", ItemTable.count_routed)
    audit_answers = _forward("records", ItemTable.audit_answers)
    unresolved_states = _forward("records", ItemTable.unresolved_states)
    labeled_by_review = _forward("records", ItemTable.labeled_by_review)
    count_reviewed_unused = _forward("records", ItemTable.count_reviewed_unused)
    seed_rows = _forward("records", ItemTable.seed_rows)
    unanimous_rows = _forward("records", ItemTable.unanimous_rows)
    by_rows = _forward("records", ItemTable.by_rows)
    consensus_below = _forward("records", ItemTable.consensus_below)
    reroute = _forward("records", ItemTable.reroute)

    save_reviews = _forward("review_log", ReviewLog.save_reviews)
    log_review = _forward("review_log", ReviewLog.log_review)
    reopen = _forward("review_log", ReviewLog.reopen)
    reviews = _forward("review_log", ReviewLog.reviews)
    live_answers = _forward("review_log", ReviewLog.live_answers)
    lease_next = _forward("review_log", ReviewLog.lease_next)
    lease_holder = _forward("review_log", ReviewLog.lease_holder)
    release = _forward("review_log", ReviewLog.release)

    cache_get = _forward("llm", LLMLedger.cache_get)
    record_llm_call = _forward("llm", LLMLedger.record_llm_call)
    reserve_llm_call = _forward("llm", LLMLedger.reserve_llm_call)
    finish_llm_call = _forward("llm", LLMLedger.finish_llm_call)
    llm_usage = _forward("llm", LLMLedger.llm_usage)
    llm_latencies = _forward("llm", LLMLedger.llm_latencies)

    record_specialist = _forward("versions", SpecialistVersions.record_specialist)
    next_version = _forward("versions", SpecialistVersions.next_version)
    active_specialist = _forward("versions", SpecialistVersions.active_specialist)
    specialist_versions = _forward("versions", SpecialistVersions.specialist_versions)
    rollback = _forward("versions", SpecialistVersions.rollback)
    commit_round = _forward("versions", SpecialistVersions.commit_round)
    rounds = _forward("versions", SpecialistVersions.rounds)
