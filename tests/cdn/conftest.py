"""A local fake of a CDN's purge API: records each request (method, path, headers, body) and answers as told."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeCDN:
    """Answers every request with ``status`` and ``answer`` and records it."""

    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    status: int = 200
    answer: bytes = b'{"status": "ok"}'

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json_bodies(self) -> list[dict]:
        return [json.loads(s.body) for s in self.seen]


@pytest.fixture
def fake() -> Iterator[FakeCDN]:
    state = FakeCDN()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.seen.append(
                Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
            )
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        do_POST = do_PURGE = do_GET = _any

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
