"""A local fake of Sigma's public embed host for tests: a threaded HTTP server on 127.0.0.1 (port chosen by
the system) started by the test and stopped in its teardown.

Paths under ``/embed/``:
- ``ok-…``: 200 with a small HTML page; ``gone-…``: 404; ``error-…``: 500;
- ``slow-…``: waits ``slow_seconds`` before answering 200;
- ``chart-…``: a page that draws a chart (an inline SVG) once a script has run, like an embed settling;
- ``hang-…``: answers headers and a little HTML, then never finishes the body (a page that never loads).
``answers`` overrides a path's status (a test turns a broken link into a working one). Every request is
recorded with its time and User-Agent. ``refused_url()`` is a URL on a port where nothing listens.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHART_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>Revenue</title>
<style>body{margin:0;font-family:sans-serif;background:#fff} h1{font-size:20px;margin:12px}</style></head>
<body><h1>Revenue by quarter</h1><div id="chart">loading...</div>
<script>
setTimeout(function () {
  var bars = [120, 180, 90, 240], svg = '<svg xmlns="http://www.w3.org/2000/svg" width="800" height="400">';
  for (var i = 0; i < bars.length; i++) {
    svg += '<rect x="' + (60 + i * 180) + '" y="' + (380 - bars[i]) + '" width="120" height="' + bars[i] +
           '" fill="#1d4ed8"/>';
  }
  document.getElementById('chart').innerHTML = svg + '</svg>';
}, 200);
</script></body></html>"""


@dataclass
class Seen:
    path: str
    at: float
    user_agent: str


@dataclass
class FakeSigma:
    slow_seconds: float = 3.0
    answers: dict[str, int] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    hang_release: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/embed/{name}"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def start(self) -> FakeSigma:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                fake.seen.append(Seen(self.path, time.monotonic(), self.headers.get("User-Agent", "")))
                name = self.path.rsplit("/", 1)[-1]
                if self.path in fake.answers:
                    status = fake.answers[self.path]
                    return self._send(status, b"<html><body>overridden</body></html>")
                if name.startswith("ok"):
                    return self._send(200, b"<!doctype html><html><body>embed</body></html>")
                if name.startswith("gone"):
                    return self._send(404, b"<html><body>Not found</body></html>")
                if name.startswith("error"):
                    return self._send(500, b"<html><body>Server error</body></html>")
                if name.startswith("slow"):
                    fake.hang_release.wait(fake.slow_seconds)
                    return self._send(200, b"<html><body>late</body></html>")
                if name.startswith("chart"):
                    return self._send(200, CHART_PAGE)
                if name.startswith("hang"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"<!doctype html><html><body><h1>Loading")
                    self.wfile.flush()
                    fake.hang_release.wait(120)
                    return None
                return self._send(404, b"<html><body>Unknown</body></html>")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.hang_release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def refused_url() -> str:
    """A URL on 127.0.0.1 whose port was free a moment ago: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/embed/refused"
