"""The routes beside `/metrics`: the page, its files, the JSON API and the event stream. Read-only.

`with_web(metrics_app, …)` is a WSGI app for the metrics server (exporters.prometheus.start_server
wraps it in the same TLS and basic auth). Files are served from a fixed table, never from a path in
the request. Every answer forbids inline script and sniffing: nothing from a log can run in the page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from urllib.parse import parse_qs

from exporters import api
from exporters.prometheus import WsgiApp
from exporters.sse import EventHub
from exporters.web import page
from monitor.snapshot import Snapshot

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                    ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]
ASSETS = {"/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8"),
          "/static/favicon.svg": ("favicon.svg", "image/svg+xml")}
RUN_PATH = re.compile(r"/api/v1/runs/([A-Za-z0-9._-]{1,64})")
JSON = "application/json"


def _read(name: str) -> bytes:
    return (resources.files("exporters.web") / name).read_bytes()


def with_web(metrics: WsgiApp, source: Callable[[], Sequence[Snapshot]], hub: EventHub, *,
             clock: Callable[[], float] = time.time) -> WsgiApp:
    files = {path: (_read(name), kind) for path, (name, kind) in ASSETS.items()}
    index = page.template()

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)

        def answer(status: str, kind: str, body: bytes, *extra: tuple[str, str]) -> list[bytes]:
            start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body))),
                                    ("Cache-Control", "no-store"), *SECURITY_HEADERS, *extra])
            return [body]

        def error(status: str, message: str, *extra: tuple[str, str]) -> list[bytes]:
            return answer(status, JSON, api.dumps({"error": message}), *extra)

        if environ.get("REQUEST_METHOD") != "GET":
            return error("405 Method Not Allowed", "read-only: use GET", ("Allow", "GET"))
        if path in ("/", "/index.html"):
            return answer("200 OK", "text/html; charset=utf-8", page.render(index, source(), clock()))
        if path in files:
            body, kind = files[path]
            return answer("200 OK", kind, body)
        if path == "/api/v1/runs":
            return answer("200 OK", JSON, api.dumps(api.runs_document(source())))
        if path == "/api/v1/events":
            stream = hub.stream()
            if stream is None:
                return error("503 Service Unavailable", "too many event-stream clients", ("Retry-After", "10"))
            start_response("200 OK", [("Content-Type", "text/event-stream; charset=utf-8"),
                                      ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no"),
                                      *SECURITY_HEADERS])
            return stream
        match = RUN_PATH.fullmatch(path)
        if match:
            try:
                since, segment, limit = _history_query(environ.get("QUERY_STRING", ""))
            except ValueError as e:
                return error("400 Bad Request", str(e))
            for s in source():
                if api.run_id(s) == match[1]:
                    return answer("200 OK", JSON, api.dumps(api.detail(s, since=since, segment=segment, limit=limit)))
            return error("404 Not Found", "no such run")
        if path == "/favicon.ico":
            return answer("204 No Content", "image/svg+xml", b"")
        return error("404 Not Found", "not found")

    return app


def _history_query(query: str) -> tuple[int | None, int, int]:
    """`since=ITER`, `segment=N` (default 0), `limit=N` (at most api.MAX_POINTS)."""
    q = parse_qs(query, max_num_fields=8)

    def number(name: str) -> int | None:
        values = q.get(name)
        if not values:
            return None
        text = values[-1]
        if not text.lstrip("-").isdigit() or len(text) > 19:
            raise ValueError(f"{name} must be an integer")
        return int(text)

    limit = number("limit")
    if limit is not None and not 1 <= limit <= api.MAX_POINTS:
        raise ValueError(f"limit must be from 1 to {api.MAX_POINTS}")
    return number("since"), number("segment") or 0, limit or api.MAX_POINTS
