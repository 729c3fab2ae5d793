"""A hostile web server for the security tests: it records every request it gets (headers
included) and answers each path as the test says (a redirect to an attacker's choice, a body)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Another loopback address than the simulator's 127.0.0.1: a host of its own to every client.
HOSTILE_HOST = "127.0.0.2"


@dataclass
class Hostile:
    base: str
    answers: dict[str, tuple[int, dict[str, str], bytes]]
    seen: list[dict[str, Any]] = field(default_factory=list)

    def authorization_seen(self) -> list[str]:
        return [s["headers"]["authorization"] for s in self.seen if "authorization" in s["headers"]]


@contextmanager
def hostile_server(answers: dict[str, tuple[int, dict[str, str], bytes]]) -> Iterator[Hostile]:
    record: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
            status, headers, body = answers.get(self.path.split("?")[0], (404, {}, b"no"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((HOSTILE_HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield Hostile(f"http://{HOSTILE_HOST}:{server.server_address[1]}", answers, record)
    finally:
        server.shutdown()
        server.server_close()
