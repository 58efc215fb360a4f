"""The review page: people review a run's hard items together in the browser (FastAPI).

Safety: bound to 127.0.0.1 unless told otherwise; an access token (printed at start) on every request;
item texts go into the page as text, never as HTML; no state change by GET. Items are leased to one
reviewer at a time (leases expire; a lease on an item settled elsewhere is dropped); answers are written to
the run store in a transaction, and a second answer to an answered item is refused. A skipped item comes back
to that reviewer only after every other waiting item. Each answer is logged once as `human`, the reviewer's
name in its detail; undo withdraws your own standing answer.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from autoannotator.store import STORE_FILE, RunStore
from autoannotator.task import Task

SOURCE = "human"
CSP = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'none'; frame-ancestors 'none'"


RowNumber = Annotated[int, Field(ge=0, lt=2**63)]  # a row SQLite can hold: larger numbers are refused (422), not an error 500


class LeaseRequest(BaseModel):
    reviewer: str = Field(min_length=1, max_length=64)


class AnswerRequest(BaseModel):
    reviewer: str = Field(min_length=1, max_length=64)
    row: RowNumber
    label: str


class RowRequest(BaseModel):
    reviewer: str = Field(min_length=1, max_length=64)
    row: RowNumber


def create_app(run_dir: Path, *, token: str, lease_seconds: float = 300.0, double_review: bool = False) -> FastAPI:
    """The app over one run directory's store, opened once: one connection that the request threads share,
    one request at a time (a lock), closed when the app shuts down."""
    shared = RunStore(run_dir / STORE_FILE)
    lock = threading.Lock()
    task = Task.model_validate(shared.fingerprint()["task"])

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        shared.close()

    app = FastAPI(title="AutoAnnotator review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    started = time.time()
    skipped: dict[str, list[int]] = {}  # reviewer -> rows they skipped, oldest first (offered to them last)

    def authorized(x_token: str | None = Header(None), token_param: str | None = Query(None, alias="token")) -> None:
        given = x_token or token_param
        if not given:
            raise HTTPException(401, "missing access token")
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(403, "wrong access token")

    def open_store() -> Iterator[RunStore]:
        with lock:
            yield shared

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(authorized)])
    def page() -> HTMLResponse:
        return HTMLResponse(render_page(task, double_review=double_review), headers={"Content-Security-Policy": CSP})

    @app.post("/api/lease", dependencies=[Depends(authorized)])
    def lease(request: LeaseRequest, store: RunStore = Depends(open_store)) -> dict:
        item = store.lease_next(request.reviewer, lease_seconds, exclude_answered_by=SOURCE if double_review else None,
                                later=skipped.get(request.reviewer, []))  # fmt: skip
        if item is None:
            return {"item": None}
        llm = [r for r in store.reviews(item.row) if r["reviewer"] == "llm"]
        return {"item": {"row": item.row, "id": item.item_id, "text": item.text, "votes": item.votes,
                         "consensus_label": item.consensus_label,
                         "llm": {"label": llm[-1]["label"], "probs": llm[-1]["probs"]} if llm else None},
                "lease_seconds": lease_seconds}  # fmt: skip

    @app.post("/api/answer", dependencies=[Depends(authorized)])
    def answer(request: AnswerRequest, store: RunStore = Depends(open_store)) -> dict:
        label = task.resolve_label(request.label)
        if label is None:
            raise HTTPException(422, f"'{request.label}' is not one of the labels {task.label_names}")
        item = store.item(request.row)
        if item is None:
            raise HTTPException(404, "no such item")
        if item.state != "pending_review":
            raise HTTPException(409, "this item was already answered")
        holder = store.lease_holder(request.row)
        if holder is not None and holder != request.reviewer:
            raise HTTPException(409, "this item is leased to another reviewer")
        if double_review:
            return double_answer(store, request, label)
        if not store.save_reviews([(request.row, SOURCE, label, None, {"reviewer": request.reviewer})]):
            raise HTTPException(409, "this item was already answered")
        store.release(request.row, request.reviewer)
        return {"settled": True, "label": label}

    def double_answer(store: RunStore, request: AnswerRequest, label: str) -> dict:
        """Two reviewers must agree: each answer is logged once; the one that matches another reviewer's
        standing (not undone) answer settles the item."""
        live = store.live_answers(request.row, SOURCE)
        if request.reviewer in live:
            raise HTTPException(409, "you already answered this item; a second reviewer is needed")
        detail = {"reviewer": request.reviewer, "double_review": True}
        agreeing = [name for name, given in live.items() if given == label]
        if agreeing:
            store.save_reviews([(request.row, SOURCE, label, None, detail | {"agreed_with": agreeing[0]})])
        else:
            store.log_review(request.row, SOURCE, label, detail)
        store.release(request.row, request.reviewer)
        if agreeing:
            return {"settled": True, "label": label, "agreed_with": agreeing[0]}
        return {"settled": False, "label": label, "waiting_for": "a second reviewer"}

    @app.post("/api/skip", dependencies=[Depends(authorized)])
    def skip(request: RowRequest, store: RunStore = Depends(open_store)) -> dict:
        """Hand the item back; this reviewer is offered it again only after every other waiting item."""
        queue = skipped.setdefault(request.reviewer, [])
        if request.row in queue:
            queue.remove(request.row)
        queue.append(request.row)
        store.release(request.row, request.reviewer)
        return {"skipped": request.row}

    @app.post("/api/undo", dependencies=[Depends(authorized)])
    def undo(request: RowRequest, store: RunStore = Depends(open_store)) -> dict:
        """Withdraw your standing answer to an item: a settled item goes back to the queue; in double review
        a first answer that waits for a second reviewer no longer counts."""
        item = store.item(request.row)
        if item is None or request.reviewer not in store.live_answers(request.row, SOURCE):
            raise HTTPException(409, "only your own answer can be undone")
        if item.state == "pending_review":
            store.log_review(request.row, SOURCE, None, {"undo": True, "reviewer": request.reviewer, "double_review": True})
        elif not store.reopen(request.row, SOURCE, reviewer=request.reviewer):
            raise HTTPException(409, f"this item was settled by {item.label_source} since; there is nothing of yours to undo")
        return {"reopened": request.row}

    @app.get("/api/progress", dependencies=[Depends(authorized)])
    def progress(store: RunStore = Depends(open_store)) -> dict:
        """Items settled by people (in all, and since the page started: the pace counts items, not answers),
        items waiting, answers given since the start, and double review's agreement rate."""
        states = store.count_by_state()
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
        answers = store.conn.execute(
            "SELECT COUNT(*) AS n FROM reviews WHERE reviewer = ? AND label IS NOT NULL AND created_at >= ?", (SOURCE, since)
        ).fetchone()["n"]
        settled = store.conn.execute(
            "SELECT COUNT(*) AS n FROM items WHERE label_source = ? AND updated_at >= ?", (SOURCE, since)
        ).fetchone()["n"]
        doubled = store.conn.execute(
            "SELECT DISTINCT row FROM reviews WHERE reviewer = ? AND json_extract(detail, '$.double_review')", (SOURCE,)
        ).fetchall()
        pairs = [set(live.values()) for live in (store.live_answers(r["row"], SOURCE) for r in doubled) if len(live) >= 2]
        agreement = sum(len(labels) == 1 for labels in pairs) / len(pairs) if pairs else None
        minutes = max((time.time() - started) / 60, 1e-9)
        reviewed = store.conn.execute("SELECT COUNT(*) AS n FROM items WHERE label_source = ?", (SOURCE,)).fetchone()["n"]
        return {"reviewed": reviewed, "remaining": states.get("pending_review", 0), "settled_this_session": settled,
                "answers_this_session": answers, "pace_per_minute": round(settled / minutes, 2), "agreement": agreement}  # fmt: skip

    return app


def render_page(task: Task, *, double_review: bool) -> str:
    """The page. Task strings are HTML-escaped here; item texts only ever reach the DOM through textContent."""
    labels = json.dumps(task.label_names).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    buttons = "".join(
        f'<button class="label" data-index="{i}"><kbd>{i + 1}</kbd> {html.escape(name)}</button>'
        for i, name in enumerate(task.label_names[:9])
    )
    values = {"TITLE": html.escape(task.name), "INSTRUCTION": html.escape(task.instruction), "BUTTONS": buttons,
              "LABELS": labels, "DOUBLE": "true" if double_review else "false"}  # fmt: skip
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], PAGE)  # one pass: a filled-in value is never read as a placeholder


PLACEHOLDER = re.compile(r"\{\{(TITLE|INSTRUCTION|BUTTONS|LABELS|DOUBLE)\}\}")


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Review: {{TITLE}}</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 860px; margin: 2em auto; color: #222; }
 header { display: flex; justify-content: space-between; align-items: baseline; }
 #text { font-size: 1.35em; line-height: 1.45; padding: 1em; background: #f6f6f4; border-radius: 8px; white-space: pre-wrap; min-height: 3em; }
 .label { font-size: 1.1em; margin: .3em; padding: .5em 1em; border-radius: 6px; border: 1px solid #888; background: #fff; cursor: pointer; }
 .label:hover { background: #eef; } kbd { font-size: .8em; color: #666; }
 #votes, #llm { color: #555; font-size: .95em; } #status { color: #276; min-height: 1.3em; } .muted { color: #777; }
 table { border-collapse: collapse; } td { padding: .1em .8em .1em 0; }
</style></head>
<body>
<header><h2>{{TITLE}}</h2><span id="progress" class="muted"></span></header>
<p class="muted">{{INSTRUCTION}}</p>
<div id="item"><div id="text"></div>
<h4>Specialists' votes</h4><table id="votes"></table><p id="llm"></p></div>
<div id="buttons">{{BUTTONS}}
 <button id="skip" class="label"><kbd>s</kbd> skip</button><button id="undo" class="label"><kbd>u</kbd> undo</button></div>
<p id="status"></p>
<script>
const LABELS = {{LABELS}}, DOUBLE = {{DOUBLE}};
const params = new URLSearchParams(location.search);
const TOKEN = params.get("token");
const REVIEWER = params.get("reviewer") || ("reviewer-" + Math.random().toString(36).slice(2, 7));
let current = null, last = null;
async function api(path, body) {
  const response = await fetch(path, {method: body ? "POST" : "GET",
    headers: {"X-Token": TOKEN, "Content-Type": "application/json"}, body: body ? JSON.stringify(body) : undefined});
  const data = await response.json();
  if (!response.ok) throw new Error(data.detail || response.statusText);
  return data;
}
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
function show(item) {
  current = item;
  const text = document.getElementById("text"), votes = document.getElementById("votes"), llm = document.getElementById("llm");
  votes.replaceChildren(); llm.textContent = "";
  if (!item) { text.textContent = "Nothing left to review. Thank you!"; return; }
  text.textContent = item.text;
  for (const [name, vote] of Object.entries(item.votes)) {
    const row = document.createElement("tr"); cell(row, name); cell(row, vote.label ?? "abstains"); cell(row, (vote.p ?? 0).toFixed(2)); votes.appendChild(row);
  }
  if (item.llm) llm.textContent = "LLM: " + (item.llm.label ?? "no valid answer");
}
async function refresh() {
  const p = await api("/api/progress");
  document.getElementById("progress").textContent =
    `${p.reviewed} reviewed, ${p.remaining} remaining, ${p.pace_per_minute}/min` + (p.agreement === null ? "" : `, agreement ${(100 * p.agreement).toFixed(0)}%`);
}
async function next() { show((await api("/api/lease", {reviewer: REVIEWER})).item); await refresh(); }
async function answer(index) {
  if (!current || index >= LABELS.length) return;
  try { const r = await api("/api/answer", {reviewer: REVIEWER, row: current.row, label: LABELS[index]});
        last = current.row; status(r.settled ? `saved: ${r.label}` : `saved: ${r.label} (waiting for a second reviewer)`); }
  catch (e) { status(e.message); }
  await next();
}
async function skip() { if (current) await api("/api/skip", {reviewer: REVIEWER, row: current.row}); status("skipped"); await next(); }
async function undo() {
  if (last === null) return;
  try { await api("/api/undo", {reviewer: REVIEWER, row: last}); status("undone"); last = null; await next(); } catch (e) { status(e.message); }
}
function status(text) { document.getElementById("status").textContent = text; }
document.querySelectorAll("button[data-index]").forEach(b => b.onclick = () => answer(Number(b.dataset.index)));
document.getElementById("skip").onclick = skip; document.getElementById("undo").onclick = undo;
document.addEventListener("keydown", e => {
  if (e.key >= "1" && e.key <= "9") answer(Number(e.key) - 1); else if (e.key === "s") skip(); else if (e.key === "u") undo();
});
next();
</script></body></html>
"""
