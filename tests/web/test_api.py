"""The review page's API through FastAPI's TestClient: tokens, leases, answers, escaping."""

from __future__ import annotations

import subprocess
import sys
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
    assert second["settled"] is True and second["agreed_with"] == "alice"
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


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from the kernel's table (Linux /proc/net/tcp*)."""
    import ipaddress

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is little-endian
                found.add(str(ipaddress.ip_address(words)))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table (Linux)")
def test_review_page_listens_on_localhost_only_by_default(run_dir: Path) -> None:
    from autoannotator.llm.server import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "autoannotator", "review", "--run-dir", str(run_dir), "--serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not listening_addresses(port) and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.1)
        assert listening_addresses(port) == {"127.0.0.1"}  # no wildcard (0.0.0.0 or ::), no other interface
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "warning" not in stderr  # the exposed-host warning is for --host only


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


# ---- issue 12, item 21: skip, stale leases, undo in double review, progress, one reviewer identity


def lease(api: TestClient, reviewer: str) -> dict | None:
    return api.post("/api/lease", json={"reviewer": reviewer}).json()["item"]


def test_skip_hands_out_another_item_and_skipped_ones_come_back_last(run_dir: Path) -> None:
    api = client(run_dir)
    first = lease(api, "alice")
    assert api.post("/api/skip", json={"reviewer": "alice", "row": first["row"]}).status_code == 200
    second = lease(api, "alice")
    assert second["row"] != first["row"]
    api.post("/api/skip", json={"reviewer": "alice", "row": second["row"]})
    third = lease(api, "alice")
    assert third["row"] not in (first["row"], second["row"])
    assert lease(api, "bob")["row"] == first["row"]  # a skip is alice's: bob is offered the item
    store = RunStore(run_dir / STORE_FILE)
    for item in store.pending_review():  # answer everything but the two alice skipped
        if item.row not in (first["row"], second["row"]):
            store.save_reviews([(item.row, "gold", "neutral", None, {})])
    store.close()
    api.post("/api/skip", json={"reviewer": "bob", "row": first["row"]})
    api.post("/api/skip", json={"reviewer": "alice", "row": third["row"]})
    assert lease(api, "alice")["row"] == first["row"]  # when only skipped items are left: the oldest skip first
    api.post("/api/skip", json={"reviewer": "alice", "row": first["row"]})
    assert lease(api, "alice")["row"] == second["row"]


def test_a_lease_on_an_item_answered_elsewhere_is_dropped(run_dir: Path) -> None:
    api = client(run_dir, lease_seconds=300)
    held = lease(api, "alice")
    store = RunStore(run_dir / STORE_FILE)  # the terminal, an import or another page answers it meanwhile
    store.save_reviews([(held["row"], "human", "negative", None, {"reviewer": "carol"})])
    store.close()
    refused = api.post("/api/answer", json={"reviewer": "alice", "row": held["row"], "label": "positive"})
    assert refused.status_code == 409
    following = lease(api, "alice")
    assert following is not None and following["row"] != held["row"]


def test_double_review_a_reviewer_can_undo_their_first_answer(run_dir: Path) -> None:
    api = client(run_dir, double_review=True)
    item = lease(api, "alice")
    row = item["row"]
    assert api.post("/api/answer", json={"reviewer": "alice", "row": row, "label": "positive"}).json()["settled"] is False
    assert api.post("/api/undo", json={"reviewer": "bob", "row": row}).status_code == 409  # not bob's answer
    assert api.post("/api/undo", json={"reviewer": "alice", "row": row}).status_code == 200
    assert lease(api, "bob")["row"] == row
    second = api.post("/api/answer", json={"reviewer": "bob", "row": row, "label": "positive"}).json()
    assert second["settled"] is False  # alice's withdrawn answer does not count
    assert lease(api, "alice")["row"] == row  # alice is asked again
    third = api.post("/api/answer", json={"reviewer": "alice", "row": row, "label": "positive"}).json()
    assert third["settled"] is True and third["agreed_with"] == "bob"
    assert api.post("/api/undo", json={"reviewer": "alice", "row": row}).status_code == 200  # a settled item reopens
    store = RunStore(run_dir / STORE_FILE)
    assert store.item(row).state == "pending_review"
    store.close()


def test_progress_counts_settled_items_not_answers(run_dir: Path) -> None:
    api = client(run_dir, double_review=True)
    row = lease(api, "alice")["row"]
    api.post("/api/answer", json={"reviewer": "alice", "row": row, "label": "negative"})
    assert lease(api, "bob")["row"] == row
    api.post("/api/answer", json={"reviewer": "bob", "row": row, "label": "negative"})
    progress = api.get("/api/progress").json()
    assert progress["reviewed"] == 1 and progress["settled_this_session"] == 1 and progress["answers_this_session"] == 2
    assert progress["agreement"] == 1.0


@pytest.mark.parametrize("double_review", [False, True])
def test_reviewer_identity_is_stored_one_way(run_dir: Path, double_review: bool) -> None:
    api = client(run_dir, double_review=double_review)
    for name in ("alice", "bob") if double_review else ("alice",):
        row = lease(api, name)["row"]
        api.post("/api/answer", json={"reviewer": name, "row": row, "label": "neutral"})
    api.post("/api/undo", json={"reviewer": "alice" if not double_review else "bob", "row": row})
    store = RunStore(run_dir / STORE_FILE)
    log = store.reviews(row)
    store.close()
    assert {r["reviewer"] for r in log} == {"human"}
    assert [r["detail"]["reviewer"] for r in log] == (["alice", "bob", "bob"] if double_review else ["alice", "alice"])


def test_a_row_out_of_range_is_refused_not_a_server_error(run_dir: Path) -> None:
    api = client(run_dir)
    for path in ["/api/answer", "/api/skip", "/api/undo"]:
        for row in [99999999999999999999999, 2**63, -1]:
            response = api.post(path, json={"reviewer": "alice", "row": row, "label": "positive"})
            assert response.status_code == 422, (path, row, response.status_code)
    assert api.post("/api/answer", json={"reviewer": "alice", "row": 2**63 - 1, "label": "positive"}).status_code == 404


def test_a_label_named_like_a_placeholder_stays_data(task) -> None:
    """The page is filled in one pass: a task string such as '{{DOUBLE}}' is never taken for a placeholder."""
    import json
    import re

    from autoannotator.task import Task
    from autoannotator.web import render_page

    odd = Task.from_dict({"name": "{{BUTTONS}}", "instruction": "say {{LABELS}}", "text_column": "text",
                          "labels": [{"name": "{{DOUBLE}}"}, {"name": "{{LABELS}}"}, {"name": "plain"}]})  # fmt: skip
    page = render_page(odd, double_review=True)
    script = re.search(r"const LABELS = (\[.*?\]), DOUBLE = (true|false);", page)
    assert script is not None and json.loads(script.group(1)) == ["{{DOUBLE}}", "{{LABELS}}", "plain"] and script.group(2) == "true"
    assert "<title>Review: {{BUTTONS}}</title>" in page and "say {{LABELS}}" in page
    assert page.count('class="label" data-index') == 3  # the buttons once, not again inside the title
