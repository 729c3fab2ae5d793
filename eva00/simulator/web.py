"""The HTTP plumbing both hosts share: a threaded HTTP/1.1 keep-alive server, requests parsed once,
responses written in one send, and connection-level faults (drop, reset, truncate).

Nothing here ever writes a stack trace to a client: an exception in a handler is logged and
answered 500 in Procore's shape; a request the stdlib parser rejects gets a JSON 400 too.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson

log = logging.getLogger("eva00.simulator")
MAX_BODY_BYTES = 8 * 1024 * 1024
JSON = "application/json; charset=utf-8"
SEND_BATCH_BYTES = 1 << 20


@dataclass
class Request:
    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    client: str
    meta: dict[str, Any] = field(default_factory=dict)  # what the gatekeepers learned, for the ledger
    # When the request arrived (host time): the ledger's time, since rate windows count arrivals and a
    # request is recorded only once its answer is sent, possibly after a later request's.
    received_at: float = field(default_factory=time.time)

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)


@dataclass
class Response:
    status: int
    body: bytes | Iterable[bytes | memoryview] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = JSON
    length: int | None = None  # for streamed bodies; None: len(body); -1: none sent, the close ends it
    # "" | "drop" (close, no answer) | "reset" (RST) | "truncate" (half the body, then close) |
    # "close" (the whole body as sent, then close: for a lying Content-Length)
    action: str = ""
    note: str | None = None  # a fault name, for the ledger

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()] + [(name, value)]


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(obj), list(headers or []))


def json_body(req: Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); a 400 for anything else."""
    if not req.body:
        return {}
    try:
        data = orjson.loads(req.body)
    except orjson.JSONDecodeError:
        raise HttpError(400, "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the request body must be a JSON object")
    return data


def error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    """Procore's error shape: ``{"errors": "..."}``."""
    return json_response(status, {"errors": message}, headers)


Handler = Callable[[Request], Response]
Recorder = Callable[[Request, Response, int], None]


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: Handler, recorder: Recorder) -> None:
        self.handler = handler
        self.recorder = recorder
        self.clock: Callable[[], float] = time.time  # what the Date header says
        super().__init__(address, _RequestHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "eva00-sim/1.0"
    sys_version = ""
    server: SimServer

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return super().date_time_string(self.server.clock() if timestamp is None else timestamp)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Requests the stdlib refuses before routing (bad request line, huge headers): JSON too."""
        text = message or HTTPStatus(code).phrase
        body = orjson.dumps({"errors": text})
        self.close_connection = True
        head = (f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nContent-Type: {JSON}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        with contextlib.suppress(OSError):
            self.wfile.write(head + body)

    def _serve(self) -> None:
        request = self._read_request()
        if request is None:
            return
        try:
            response = self.server.handler(request)
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.path)
            response = error(500, "Internal Server Error")
        sent = self._write(request, response)
        try:
            self.server.recorder(request, response, sent)
        except Exception:
            log.exception("recording failed")

    def _read_request(self) -> Request | None:
        path, _, raw_query = self.path.partition("?")
        try:
            body = self._read_body()
        except ValueError as exc:
            self.send_error(400 if "chunk" in str(exc) else 413, str(exc))
            return None
        try:
            query = parse_qs(raw_query, keep_blank_values=True)
        except ValueError:
            query = {}
        return Request(self.command, path or "/", raw_query, query, self.headers, body,
                       self.client_address[0])

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        if not length_text.isdigit():
            raise ValueError("bad Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise ValueError("request body too large")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise ValueError("bad chunk size") from None
            if size == 0:
                self.rfile.readline(1024)
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise ValueError("request body too large")
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _write(self, request: Request, response: Response) -> int:
        if response.action in ("drop", "reset"):
            self._close(reset=response.action == "reset")
            return 0
        body = response.body
        length = response.length if response.length is not None else len(body)  # type: ignore[arg-type]
        known = response.status in HTTPStatus._value2member_map_
        phrase = HTTPStatus(response.status).phrase if known else ""
        lines = [f"HTTP/1.1 {response.status} {phrase}", f"Content-Type: {response.content_type}"]
        if length >= 0:
            lines.append(f"Content-Length: {length}")
        else:
            response.action = "close"  # no length: the body ends when the connection does
        if response.header("Date") is None:
            # Every answer carries the server's time, as Procore's do: clients set cursors by it.
            lines.append(f"Date: {self.date_time_string()}")
        lines += [f"{k}: {v}" for k, v in response.headers]
        if self.close_connection or response.action in ("truncate", "close"):
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        try:
            sent = self._send(head, request.method == "HEAD", body, response.action == "truncate", length)
        except OSError:
            self.close_connection = True
            return 0
        if response.action == "close":
            self._close(reset=False)
        return sent

    def _send(self, head: bytes, head_only: bool, body: bytes | Iterable[bytes | memoryview],
              truncate: bool, length: int) -> int:
        if head_only:
            self.wfile.write(head)
            return 0
        if isinstance(body, bytes):
            chunk = body[:len(body) // 2] if truncate else body
            self.wfile.write(head + chunk)
            if truncate:
                self._close(reset=False)
            return len(chunk)
        self.wfile.write(head)
        sent = 0
        batch: list[memoryview] = []
        batch_bytes = 0
        for piece in _limit(body, length // 2 if truncate else None):
            batch.append(memoryview(piece))
            batch_bytes += len(piece)
            # A small piece goes at once: a drip must reach the client as it drips.
            if batch_bytes >= SEND_BATCH_BYTES or len(batch) >= 64 or len(piece) < 1024:
                sent += _send_all(self.connection, batch)
                batch, batch_bytes = [], 0
        sent += _send_all(self.connection, batch)
        if truncate:
            self._close(reset=False)
        return sent

    def _close(self, *, reset: bool) -> None:
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        except OSError:
            pass


def _send_all(sock: socket.socket, views: list[memoryview]) -> int:
    """Scatter-gather send of several pieces in as few system calls as the kernel allows."""
    total = sum(len(v) for v in views)
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]
    return total


def _limit(pieces: Iterable[bytes | memoryview], limit: int | None) -> Iterator[bytes | memoryview]:
    sent = 0
    for piece in pieces:
        if limit is not None and sent + len(piece) >= limit:
            yield piece[:limit - sent]
            return
        sent += len(piece)
        yield piece


class HttpError(Exception):
    """Raised anywhere below a route to answer with Procore's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bearer(req: Request, lenient: bool) -> str | None:
    value = req.header("Authorization")
    if value is not None:
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return req.q("access_token") if lenient else None
