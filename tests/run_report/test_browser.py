"""The report in headless Debian Chromium (Playwright): it renders from disk, every plot loads, and the
markup in the data shows as text and never runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoannotator.run_report import write_report
from tests.web.conftest import INJECTION

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium); .ci/run installs it")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
def test_report_renders_in_chromium_and_runs_no_script_from_the_data(hostile_run: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = write_report(hostile_run.with_name("out.csv.run"), tmp_path / "report.html", gold_column="truth")
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.resolve().as_uri(), wait_until="load")
        assert page.title().startswith("AutoAnnotator report: tweets <script>")  # the hostile task name, as text
        assert page.evaluate("document.scripts.length") == 0
        assert page.evaluate("window.pwned") is None  # neither the <script> nor the onerror ran
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.src.slice(0, 22)])")
        assert len(images) >= 5 and all(done and width > 100 and src == "data:image/png;base64," for done, width, src in images)
        body = page.inner_text("body")
        assert INJECTION in body and "Unresolved items by reason" in body and "Accuracy against the review budget" in body
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []  # nothing loaded from anywhere
    assert (tmp_path / "report.png").stat().st_size > 50_000
