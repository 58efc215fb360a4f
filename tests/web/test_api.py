"""The review page's API through FastAPI's TestClient: tokens, leases, answers, escaping."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from autoannotator.store import STORE_FILE, RunStore
from autoannotator.web import create_app
from tests.web.conftest import INJECTION

TOKEN = "secret-token-123"


def client(run_dir: Path, **kwargs) -> TestClient:
    return TestClient(create_app(run_dir, token=TOKEN, **kwargs), headers={"X-Token": TOKEN})


def test_missing_or_wrong_token_is_refused_everywhere(run_dir: Path) -> None:
    app = create_app(run_dir, token=TOKEN)
    anonymous = TestClient(app)
    for method, path in [("get", "/"), ("get", "/api/progress"), ("post", "/api/lease"), ("post", "/api/answer")]:
        assert getattr(anonymous, method)(path).status_code == 401
        assert getattr(anonymous, method)(path, headers={"X-Token": "guess"}).status_code == 403
    assert anonymous.get(f"/?token={TOKEN}").status_code == 200


def test_leases_one_item_per_reviewer(run_dir: Path) -> None:
    api = client(run_dir)
    alice = api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]
    bob = api.post("/api/lease", json={"reviewer": "bob"}).json()["item"]
    assert alice["row"] != bob["row"]
    assert api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]["row"] == alice["row"]  # same lease again
    refused = api.post("/api/answer", json={"reviewer": "bob", "row": alice["row"], "label": "positive"})
    assert refused.status_code == 409 and "leased to another reviewer" in refused.json()["detail"]


def test_leases_expire(run_dir: Path) -> None:
    api = client(run_dir, lease_seconds=0.5)
    first = api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]
    assert api.post("/api/lease", json={"reviewer": "bob"}).json()["item"]["row"] != first["row"]
    time.sleep(0.6)
    assert api.post("/api/lease", json={"reviewer": "carol"}).json()["item"]["row"] == first["row"]


def test_answer_is_stored_and_a_second_answer_is_refused(run_dir: Path) -> None:
    api = client(run_dir)
    item = api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]
    ok = api.post("/api/answer", json={"reviewer": "alice", "row": item["row"], "label": "NEG"})
    assert ok.status_code == 200 and ok.json() == {"settled": True, "label": "negative"}
    again = api.post("/api/answer", json={"reviewer": "bob", "row": item["row"], "label": "positive"})
    assert again.status_code == 409 and "already answered" in again.json()["detail"]
    store = RunStore(run_dir / STORE_FILE)
    record = store.item(item["row"])
    assert (record.label, record.label_source, record.state) == ("negative", "human", "done")
    store.close()
    bad = api.post("/api/answer", json={"reviewer": "alice", "row": item["row"] + 1, "label": "sarcastic"})
    assert bad.status_code == 422


def test_undo_only_your_own_answer(run_dir: Path) -> None:
    api = client(run_dir)
    item = api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]
    api.post("/api/answer", json={"reviewer": "alice", "row": item["row"], "label": "neutral"})
    assert api.post("/api/undo", json={"reviewer": "bob", "row": item["row"]}).status_code == 409
    assert api.post("/api/undo", json={"reviewer": "alice", "row": item["row"]}).status_code == 200
    store = RunStore(run_dir / STORE_FILE)
    assert store.item(item["row"]).state == "pending_review"
    store.close()


def test_double_review_settles_when_two_agree(run_dir: Path) -> None:
    api = client(run_dir, double_review=True)
    item = api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]
    first = api.post("/api/answer", json={"reviewer": "alice", "row": item["row"], "label": "positive"}).json()
    assert first["settled"] is False
    assert api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]["row"] != item["row"]  # not asked twice
    assert api.post("/api/lease", json={"reviewer": "bob"}).json()["item"]["row"] == item["row"]
    second = api.post("/api/answer", json={"reviewer": "bob", "row": item["row"], "label": "positive"}).json()
    assert second["settled"] is True and second["agreed_with"] == "human:alice"
    assert api.get("/api/progress").json()["agreement"] == 1.0


def test_no_state_change_by_get(run_dir: Path) -> None:
    api = client(run_dir)
    before = api.get("/api/progress").json()
    assert api.get("/api/lease").status_code == 405 and api.get("/api/answer").status_code == 405
    assert api.get("/api/progress").json() == before


def test_texts_are_data_never_markup(run_dir: Path) -> None:
    api = client(run_dir)
    response = api.get("/")
    page = response.text
    assert "<script>window.pwned" not in page and "textContent = item.text" in page
    assert "img-src 'none'" in response.headers["content-security-policy"]
    item = api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]
    assert item["row"] == 0 and item["text"] == INJECTION  # JSON carries it verbatim; the page sets textContent


def test_task_strings_in_the_page_are_escaped(tmp_path: Path, task, seed_frame, tweets_frame) -> None:
    from autoannotator import Annotator

    hostile = task.model_copy(update={"name": "<img src=x onerror=alert(1)>", "instruction": "</script><script>alert(2)</script>"})
    Annotator(hostile, specialists=["tfidf", "lexicon"], run_dir=tmp_path / "r").annotate(tweets_frame.iloc[:20], seed=seed_frame)
    page = TestClient(create_app(tmp_path / "r", token=TOKEN)).get(f"/?token={TOKEN}").text
    assert "<img src=x" not in page and "&lt;img src=x" in page and "<script>alert(2)" not in page


@pytest.mark.parametrize("host", ["127.0.0.1"])
def test_cli_binds_localhost_by_default(host: str) -> None:
    from typer.testing import CliRunner

    from autoannotator.cli import app

    help_text = CliRunner().invoke(app, ["review", "--help"]).output
    assert "127.0.0.1" in help_text


def test_the_store_is_opened_once_for_the_app_not_per_request(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autoannotator.web as web

    opened: list[Path] = []

    class CountingStore(RunStore):
        def __init__(self, path: Path, **kwargs) -> None:
            opened.append(path)
            super().__init__(path, **kwargs)

    monkeypatch.setattr(web, "RunStore", CountingStore)
    api = client(run_dir)
    for _ in range(3):
        assert api.get("/api/progress").status_code == 200
        item = api.post("/api/lease", json={"reviewer": "alice"}).json()["item"]
    assert api.post("/api/answer", json={"reviewer": "alice", "row": item["row"], "label": "positive"}).status_code == 200
    assert len(opened) == 1


def test_concurrent_requests_share_the_one_connection_safely(run_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    api = client(run_dir)

    def lease_and_answer(n: int) -> int:
        reviewer = f"r{n}"
        item = api.post("/api/lease", json={"reviewer": reviewer}).json()["item"]
        assert api.post("/api/answer", json={"reviewer": reviewer, "row": item["row"], "label": "neutral"}).status_code == 200
        return item["row"]

    with ThreadPoolExecutor(8) as pool:
        rows = list(pool.map(lease_and_answer, range(16)))
    assert len(set(rows)) == 16  # no item leased twice
    assert api.get("/api/progress").json()["reviewed"] == 16
