import sqlite3
from pathlib import Path

import pytest

from autoannotator import AnnotatorError
from autoannotator.store import ItemRecord, RunStore


def record(row: int, state: str = "done") -> ItemRecord:
    return ItemRecord(row=row, item_id=f"id{row}", text_hash="h", state=state, label="a" if state == "done" else None,
                      label_source="consensus" if state == "done" else "unresolved", consensus_label="a",
                      uncertainty=0.0, votes={"m": {"label": "a", "p": 0.9}})  # fmt: skip


def test_store_is_a_wal_sqlite_file(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, {"input": "x"})
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert (tmp_path / "run.sqlite").is_file()


def test_an_item_is_never_stored_twice(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, {"input": "x"})
    store.start_session()
    store.save_items([record(0), record(1)])
    with pytest.raises(sqlite3.IntegrityError):
        store.save_items([record(2), record(1)])
    assert sorted(store.processed_rows()) == [0, 1]  # the failed chunk left nothing behind


def test_reviews_only_touch_pending_items(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, {"input": "x"})
    store.start_session()
    store.save_items([record(0), record(1, state="pending_review")])
    settled = store.save_reviews([(0, "gold", "b", None, {}), (1, "gold", "b", {"b": 0.9, "a": 0.1}, {"attempts": 1})])
    assert settled == 1
    by_row = {r.row: r for r in store.items()}
    assert (by_row[0].label, by_row[0].label_source) == ("a", "consensus")
    assert (by_row[1].label, by_row[1].reviewed_label, by_row[1].label_source) == ("b", "b", "gold")
    assert store.pending_review() == []
    assert [r["probs"] for r in store.reviews(1)] == [{"b": 0.9, "a": 0.1}]


def test_a_different_run_is_refused(tmp_path: Path) -> None:
    RunStore.open(tmp_path, {"input": "x", "task": 1}).close()
    with pytest.raises(AnnotatorError, match=r"holds a different run \(changed: input\)"):
        RunStore.open(tmp_path, {"input": "y", "task": 1})


def test_the_parts_share_one_connection_and_one_transaction(tmp_path: Path) -> None:
    store = RunStore.open(tmp_path, {"input": "x"})
    store.start_session()
    parts = [store.records, store.review_log, store.llm, store.versions]
    assert all(part.db is store.db for part in parts) and store.conn is store.db.conn
    with pytest.raises(RuntimeError), store.transaction() as conn:  # a failure rolls back every part's writes
        conn.execute("INSERT INTO llm_cache(key, model, response, created_at) VALUES ('k', 'm', '{}', 'now')")
        conn.execute("INSERT INTO specialists(name, version, kind, path, status, created_at) VALUES ('t', 1, 't', 'p', 'active', 'now')")
        raise RuntimeError("crash in the middle")
    assert store.cache_get("k") is None and store.active_specialist("t") is None
    store.save_items([record(0, state="pending_review")])
    assert store.save_reviews([(0, "gold", "a", None, {})]) == 1  # RunStore's methods reach their parts
    assert store.records.item(0).label_source == "gold" and store.review_log.reviews(0)[0]["reviewer"] == "gold"
    store.close()
