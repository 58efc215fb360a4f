"""Make docs/review_page.png: the review page on the bundled example, in headless Debian Chromium.

    python scripts/review_screenshot.py
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import uvicorn
from playwright.sync_api import sync_playwright

from autoannotator import Annotator, Task
from autoannotator.llm.server import free_port
from autoannotator.web import create_app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tweets"


def main() -> None:
    task = Task.from_yaml(EXAMPLE / "task.yaml")
    tweets = pd.read_csv(EXAMPLE / "tweets.csv", dtype=str).iloc[:120]
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        Annotator(task, specialists=["tfidf", "embedding", "lexicon"], reviewer="none", run_dir=run_dir).annotate(
            tweets, seed=EXAMPLE / "seed.csv"
        )
        port, token = free_port(), "screenshot"
        server = uvicorn.Server(uvicorn.Config(create_app(run_dir, token=token), host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_context(bypass_csp=True, viewport={"width": 960, "height": 640}).new_page()
            page.goto(f"http://127.0.0.1:{port}/?token={token}&reviewer=alice")
            page.wait_for_function("document.getElementById('text').textContent.length > 0")
            page.keyboard.press("1")
            page.wait_for_function("document.getElementById('status').textContent.startsWith('saved')")
            page.screenshot(path=str(ROOT / "docs" / "review_page.png"))
            browser.close()
        server.should_exit = True
    print(f"wrote {ROOT / 'docs' / 'review_page.png'}")


if __name__ == "__main__":
    main()
