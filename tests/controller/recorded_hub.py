"""A local HTTP server that answers like the Hub from tests/fixtures/hub_responses.json."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "hub_responses.json"


def serve_recorded_hub() -> tuple[ThreadingHTTPServer, list[str]]:
    """Start the server on a free port; returns it and the list of paths it was asked for."""
    data = json.loads(FIXTURE.read_text())
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            asked.append(url.path)
            if url.path == "/api/models":
                query = parse_qs(url.query)
                search = query.get("search", [""])[0].lower()
                models = [m for m in data["models"] if all(w in m["id"].lower() for w in search.split())]
                return self._send(200, json.dumps(models).encode())
            key = url.path.lstrip("/").replace("/resolve/main/", "/")
            if key not in data["files"]:
                return self._send(404, b'{"error": "Entry not found"}')
            content = data["files"][key]
            return self._send(200, (json.dumps(content) if isinstance(content, dict) else content).encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, asked
