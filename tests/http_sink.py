"""A real HTTP receiver on 127.0.0.1 for apprise's `json://` posts, for the notification tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Post:
    path: str
    body: dict[str, object]
    at: float


class Sink:
    """Records every POST; answers with `statuses` in turn (then 200), or holds requests while `hold` is set."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.posts: list[Post] = []
        self.statuses = list(statuses)
        self.hold = threading.Event()  # set: requests wait until `release` is set (a slow receiver)
        self.release = threading.Event()
        self.held = threading.Event()  # a request is being held now
        self._cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if sink.hold.is_set():
                    sink.held.set()
                    sink.release.wait(30)
                with sink._cond:
                    sink.posts.append(Post(self.path, body, time.time()))
                    status = sink.statuses.pop(0) if sink.statuses else 200
                    sink._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def wait(self, until: Callable[[list[Post]], bool], timeout: float = 20.0) -> list[Post]:
        """The posts once `until(posts)` holds; AssertionError with what did arrive after `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: until(self.posts), timeout):
                raise AssertionError(f"receiver got {[p.body.get('title') for p in self.posts]}")
            return list(self.posts)

    def titles(self) -> list[object]:
        with self._cond:
            return [p.body.get("title") for p in self.posts]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
