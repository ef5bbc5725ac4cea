"""The ceiling for ``make bench-web``: a bare WSGI hello-world app, served by gunicorn with the site's own
settings (``gunicorn -c deploy/gunicorn.conf.py bench.hello_wsgi:application``).

No Django, no middleware, no database, no cache: whatever this serves per second is what gunicorn (gthread
workers sized for this machine) and the loopback network can do, so every page's requests/s is read as a
fraction of it.
"""

from __future__ import annotations

BODY = b"Hello, world!\n"
HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
