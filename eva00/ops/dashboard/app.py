"""The dashboard's WSGI application and its server, bound to 127.0.0.1 only.

The server answers only requests whose Host header names it (127.0.0.1, localhost or [::1] with its
port, or a name in EVA00_DASHBOARD_HOSTS for a reverse proxy); anything else gets 421, so a web
page whose DNS name is rebound to 127.0.0.1 cannot read the dashboard from a browser.

The routes: `/` and `/static/*` (the page, its JavaScript and CSS, all shipped in the package so
it works without internet), `/api/status` (the status snapshot as JSON), `/api/pair?family=&project=`
(one heat-map cell: its kinds' freshness and next planned poll, recent polls and errors; project 0
for the company-level kinds) and `/metrics` (Prometheus text). Reads only; a failing source shows
up inside the answer, never as a crashed server.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from eva00.kinds import FAMILY_KINDS
from eva00.ops.dashboard.metrics import make_registry
from eva00.ops.status import StatusReader

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Never anything else: the dashboard has no authentication, so it is reachable from this host only.
BIND_HOST = "127.0.0.1"
LOOPBACK_NAMES = frozenset({BIND_HOST, "localhost", "[::1]"})

StartResponse = Callable[..., Any]


class DashboardApp:
    def __init__(self, reader: StatusReader, static_dir: Path = STATIC_DIR) -> None:
        self.reader = reader
        self.static_dir = static_dir
        self.registry = make_registry(reader)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"GET only\n", "text/plain")
        if path == "/api/status":
            return _reply(start_response, "200 OK", self.reader.snapshot().to_json(), "application/json")
        if path == "/api/pair":
            return self._pair(start_response, parse_qs(environ.get("QUERY_STRING", "")))
        if path == "/metrics":
            return _reply(start_response, "200 OK", generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path in ("/", "/index.html"):
            return self._static(start_response, "index.html")
        if path.startswith("/static/"):
            return self._static(start_response, path.removeprefix("/static/"))
        return _reply(start_response, "404 Not Found", b"not found\n", "text/plain")

    def _pair(self, start_response: StartResponse, query: dict[str, list[str]]) -> Iterable[bytes]:
        family = (query.get("family") or [""])[0]
        project = (query.get("project") or [""])[0]
        if family not in FAMILY_KINDS or not project.isdigit():
            return _reply(start_response, "400 Bad Request",
                          b"family (one of FAMILY_KINDS) and project (an id, 0: company) required\n",
                          "text/plain")
        detail = self.reader.pair(family, int(project))
        return _reply(start_response, "200 OK", orjson.dumps(detail, option=orjson.OPT_NON_STR_KEYS),
                      "application/json")

    def _static(self, start_response: StartResponse, name: str) -> Iterable[bytes]:
        target = (self.static_dir / name).resolve()
        if not target.is_relative_to(self.static_dir) or not target.is_file():
            return _reply(start_response, "404 Not Found", b"not found\n", "text/plain")
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return _reply(start_response, "200 OK", target.read_bytes(), content_type)


def _reply(start_response: StartResponse, status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")])
    return [body]


def split_host(value: str) -> tuple[str, str]:
    """A Host header's (name, port), lower case; port "" when absent. "[::1]:8403" -> ("[::1]", "8403")."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return name + "]", rest.removeprefix(":")
    name, _, port = value.partition(":")
    return name, port


def host_allowed(host: str, server_port: str, extra_names: frozenset[str]) -> bool:
    """A loopback name with the server's own port, or a configured name (any port: the proxy's)."""
    name, port = split_host(host)
    if name in extra_names:
        return True
    return name in LOOPBACK_NAMES and (port or "80") == server_port


class HostGuard:
    """WSGI middleware: 421 for a request whose Host is not this server (DNS rebinding)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], extra_names: Iterable[str] = ()) -> None:
        self.app = app
        self.extra_names = frozenset(split_host(n)[0] for n in extra_names)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST", "")
        if not host_allowed(host, str(environ.get("SERVER_PORT", "")), self.extra_names):
            log.warning("421 for Host %r (not this dashboard; see EVA00_DASHBOARD_HOSTS)", host[:100])
            return _reply(start_response, "421 Misdirected Request", b"unknown host\n", "text/plain")
        return self.app(environ, start_response)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # One slow scrape must not hold the page; threads end with the process.
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def make_dashboard_server(app: DashboardApp, port: int, hosts: Iterable[str] = ()) -> WSGIServer:
    """A threaded server on 127.0.0.1:port (port 0: any free port, see server.server_port) that
    answers only the Host names of HostGuard (``hosts``: EVA00_DASHBOARD_HOSTS)."""
    return make_server(BIND_HOST, port, HostGuard(app, hosts), server_class=_ThreadingServer,
                       handler_class=_QuietHandler)


def serve(server: WSGIServer, stop: threading.Event) -> None:
    """Serve until ``stop`` is set (SIGTERM), then close the socket."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    server.server_close()
