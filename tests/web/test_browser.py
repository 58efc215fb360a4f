"""End to end: the real server, headless Debian Chromium driven by Playwright: one item skipped, three reviewed by keyboard."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoannotator.llm.server import free_port
from autoannotator.store import STORE_FILE, RunStore
from tests.web.conftest import INJECTION

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium); .ci/run installs it")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def server(run_dir: Path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "autoannotator", "review", "--run-dir", str(run_dir), "--serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
    assert match, line
    deadline = time.monotonic() + 30
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield match.group(1)
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.slow
def test_skip_one_then_review_three_items_by_keyboard(server: str, run_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # The page's CSP forbids eval, which Playwright's own waiting helpers use: the test context bypasses it,
        # so what keeps the markup inert below is textContent alone.
        page = browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 720}).new_page()
        page.goto(server + "&reviewer=tester")
        page.wait_for_function("document.getElementById('text').textContent.length > 0")
        assert page.inner_text("#text") == INJECTION  # markup shown as text
        assert page.evaluate("window.pwned") is None  # and never run
        skipped = page.evaluate("current.row")
        page.keyboard.press("s")  # skip hands out another item, not the same one again
        page.wait_for_function(f"current && current.row !== {skipped}")
        rows = []
        for key in ("1", "2", "3"):
            rows.append(page.evaluate("current.row"))
            page.keyboard.press(key)
            page.wait_for_function(f"current && current.row !== {rows[-1]}")
        page.wait_for_function("document.getElementById('progress').textContent.startsWith('3 reviewed')")
        page.screenshot(path=str(tmp_path / "review.png"))
        browser.close()
    store = RunStore(run_dir / STORE_FILE)
    answered = {r.row: (r.label, r.label_source) for r in store.items() if r.label_source == "human"}
    assert answered == {rows[0]: ("negative", "human"), rows[1]: ("neutral", "human"), rows[2]: ("positive", "human")}
    assert skipped not in answered and store.item(skipped).state == "pending_review"
    store.close()
    assert (tmp_path / "review.png").stat().st_size > 10_000
