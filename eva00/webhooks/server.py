"""The HTTP side of the listener: two routes on waitress, with a body limit and a read deadline.

waitress (pure-Python, production WSGI server) reads requests asynchronously, so a slow client
costs a socket, not a worker thread; a bounded pool of ``threads`` runs the handler. On top:
- a body over ``max_body_bytes`` (64 KiB) is refused with 413 from its Content-Length (or when a
  chunked body passes the limit), before it is read;
- a request not fully received ``read_timeout_s`` after its first byte is cut (slowloris: waitress
  alone only times out *idle* connections, and a trickle is never idle);
- only ``POST /webhooks/procore`` and ``GET /healthz``; other paths 404, other methods 405; the
  listener proxies nothing, whatever the Host or an absolute request target names;
- answers are small JSON documents, never a stack trace; logs never carry a header value;
- ``/healthz`` answers from a cached check (CachedHealth): a flood costs no queries;
- every authenticated delivery within the size limit gets a 2xx: a body that cannot be parsed or
  stored (bad JSON, an unknown payload version, NUL characters) is kept raw with the reason and
  answered 200, because Procore retries any other answer for hours and pauses the hook meanwhile.
  Only a failed authentication (401), an oversize body (413) and our own outage (503) are not 2xx.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import psycopg
import redis
from psycopg_pool import ConnectionPool
from redis.backoff import NoBackoff
from redis.retry import Retry
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from eva00.config import Settings
from eva00.runtime import db
from eva00.webhooks import events
from eva00.webhooks.auth import SIGNATURE_ENVIRON, Authenticator, SecretFile
from eva00.webhooks.intake import Intake, Outcome, Unavailable
from eva00.webhooks.options import WebhookOptions

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/procore"
HEALTH_PATH = "/healthz"
ROUTES = {WEBHOOK_PATH: "POST", HEALTH_PATH: "GET"}

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}


class WebhookApp:
    """The WSGI application: routing, authentication, parsing, then the intake."""

    def __init__(self, auth: Authenticator, intake: Intake, health: Callable[[], dict[str, bool]],
                 *, max_body_bytes: int) -> None:
        self.auth = auth
        self.intake = intake
        self.health = health
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, document, headers = self.dispatch(environ)
        except Exception:
            log.exception("webhook request failed")
            status, document, headers = 500, {"error": "internal error"}, []
        body = orjson.dumps(document)
        start_response(f"{status} {REASONS[status]}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"), *headers])
        return [body]

    def dispatch(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        allowed = ROUTES.get(path)
        if allowed is None:
            return 404, {"error": "not found"}, []
        if method != allowed:
            return 405, {"error": "method not allowed"}, [("Allow", allowed)]
        if path == HEALTH_PATH:
            checks = self.health()
            return (200 if all(checks.values()) else 503), {"status": checks}, []
        return self.webhook(environ)

    def webhook(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        peer = environ.get("HTTP_CF_CONNECTING_IP") or environ.get("REMOTE_ADDR", "?")
        if not self.auth.authorization_valid(environ.get("HTTP_AUTHORIZATION")):
            log.warning("401 for a delivery from %s: Authorization missing or not accepted", peer)
            return 401, {"error": "unauthorized"}, [("WWW-Authenticate", 'Bearer realm="webhooks"')]
        body = self._body(environ)
        if body is None:
            return 413, {"error": f"body over {self.max_body_bytes} bytes"}, []
        if not self.auth.body_valid(body, environ.get(SIGNATURE_ENVIRON)):
            log.warning("401 for a delivery from %s: signature missing or wrong", peer)
            return 401, {"error": "unauthorized"}, []
        try:
            outcome = self._accept(body)
        except Unavailable as exc:
            log.warning("503 for a delivery from %s: %s", peer, exc)
            return 503, {"error": "temporarily unavailable"}, [("Retry-After", "5")]
        return outcome.http_status, {"result": outcome.result, "detail": outcome.detail}, []

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        try:
            declared = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > self.max_body_bytes:
            return None
        body: bytes = environ["wsgi.input"].read(self.max_body_bytes + 1)
        return None if len(body) > self.max_body_bytes else body

    def _accept(self, body: bytes) -> Outcome:
        try:
            event = events.parse_body(body)
        except (events.MalformedJson, events.InvalidPayload) as exc:
            log.info("200, kept raw: %s", exc)
            return self.intake.record_unreadable(body, str(exc))
        try:
            outcome = self.intake.accept(event)
        except psycopg.DataError as exc:
            # A value PostgreSQL refuses that the parser let through: keep the body, answer 200.
            log.warning("200, kept raw: PostgreSQL refused the event (%s)", type(exc).__name__)
            return self.intake.record_unreadable(body, f"not storable: {type(exc).__name__}")
        log.info("%s %s %s/%s %s: %d %s", event.event_key, event.event_type, event.resource_name,
                 event.resource_id, event.project_id, outcome.http_status, outcome.result)
        return outcome


# --- the server ---

class DeadlineServer(TcpWSGIServer):
    """waitress's TCP server, plus: a request still incomplete ``read_timeout_s`` after its first
    byte closes the connection (waitress's channel_timeout only catches idle connections)."""

    read_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._partial_since: dict[int, tuple[object, float]] = {}
        super().__init__(*args, **kwargs)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        seen: dict[int, tuple[object, float]] = {}
        for fd, channel in list(self.active_channels.items()):
            request = channel.request
            if request is None or channel.requests:
                continue  # between requests (the idle timeout applies) or being answered
            first = self._partial_since.get(fd)
            if first is None or first[0] is not request:
                first = (request, now)
            seen[fd] = first
            if now - first[1] > self.read_timeout_s:
                log.info("closing a connection from %s: request incomplete after %.0f s",
                         channel.addr[0] if channel.addr else "?", self.read_timeout_s)
                channel.will_close = True
        self._partial_since = seen


def make_server(app: Callable[..., Iterable[bytes]], options: WebhookOptions) -> DeadlineServer:
    adj = Adjustments(
        host=options.host, port=options.port, threads=options.threads,
        connection_limit=options.connection_limit,
        channel_timeout=max(1, int(options.read_timeout_s)), cleanup_interval=1,
        max_request_header_size=16 * 1024,
        # waitress refuses a body whose length is >= the limit; ours is inclusive.
        max_request_body_size=options.max_body_bytes + 1,
        expose_tracebacks=False, ident="", clear_untrusted_proxy_headers=True,
        log_socket_errors=False)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    server = DeadlineServer(app, map={}, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0])
    server.read_timeout_s = options.read_timeout_s
    return server


def health_checks(pool: ConnectionPool, client: redis.Redis) -> Callable[[], dict[str, bool]]:
    def check() -> dict[str, bool]:
        result = {"postgres": False, "redis": False}
        with contextlib.suppress(psycopg.Error), pool.connection(timeout=1.0) as conn:
            conn.execute("SELECT 1")
            result["postgres"] = True
        with contextlib.suppress(redis.RedisError):
            result["redis"] = bool(client.ping())
        return result

    return check


HEALTH_MAX_AGE_S = 2.0


class CachedHealth:
    """``/healthz`` answers from the last check while it is younger than ``max_age_s``: a flood of
    (unauthenticated) requests runs one query and one PING per ``max_age_s`` at most. One check at
    a time; requests arriving during it wait for its result."""

    def __init__(self, check: Callable[[], dict[str, bool]], max_age_s: float = HEALTH_MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.check, self.max_age_s, self.clock = check, max_age_s, clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._result: dict[str, bool] = {}

    def __call__(self) -> dict[str, bool]:
        with self._lock:
            if self._checked_at is None or self.clock() - self._checked_at >= self.max_age_s:
                self._result = self.check()
                self._checked_at = self.clock()
            return dict(self._result)


class Listener:
    """The server plus its housekeeping thread (requeue of events left 'received')."""

    def __init__(self, options: WebhookOptions, auth: Authenticator, intake: Intake,
                 health: Callable[[], dict[str, bool]]) -> None:
        self.options = options
        self.intake = intake
        self.app = WebhookApp(auth, intake, health, max_body_bytes=options.max_body_bytes)
        self.server = make_server(self.app, options)
        self._stop = threading.Event()
        self._stopping = False
        self._lock = threading.RLock()
        self._housekeeper = threading.Thread(target=self._requeue_loop, name="webhook-requeue",
                                             daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def run(self) -> None:
        """Serve until ``stop()``; requests being handled then get at most 5 s to finish their
        work (their answers are dropped: Procore delivers again, dedup sees the row)."""
        self._housekeeper.start()
        log.info("webhook listener on %s:%d", self.options.host, self.port)
        adj = self.server.adj
        try:
            while not self._stopping and self.server._map:
                wasyncore.loop(timeout=adj.asyncore_loop_timeout, map=self.server._map,
                               use_poll=adj.asyncore_use_poll, count=1)
        finally:
            self._stop.set()
            self.server.task_dispatcher.shutdown(timeout=5)  # no worker wakes the loop after
            with self._lock:
                self._stopping = True
                wasyncore.close_all(self.server._map)

    def stop(self) -> None:
        """Thread- and signal-safe, idempotent. Only the loop closes sockets, and never while
        this wakes it: waitress's own ``pull_trigger(thunk)`` can run a closing thunk before its
        pipe write, which then hits a closed (or reused) descriptor."""
        with self._lock:  # reentrant: a signal may arrive while run() holds it
            if self._stopping:
                return
            self._stopping = True
            self.server.pull_trigger()
        self._stop.set()

    def _requeue_loop(self) -> None:
        delay_s = 0.0  # at start first, then periodically
        while not self._stop.wait(delay_s):
            delay_s = self.options.requeue_interval_s
            try:
                self.intake.requeue_received()
            except Unavailable as exc:
                log.warning("requeue of received events postponed: %s", exc)
            except Exception:
                log.exception("requeue of received events failed; the next round retries")


def build_listener(settings: Settings) -> Listener:
    """Wait for PostgreSQL (schema applied), then wire clients with timeouts that fit the 5 s
    Procore allows a delivery: a stuck dependency answers 503 instead of hanging."""
    db.wait_until_ready(settings, timeout_s=float("inf"))
    options = WebhookOptions.from_settings(settings)
    pool = ConnectionPool(settings.effective_database_url, min_size=2,
                          max_size=options.threads + 2, name="webhook", open=True,
                          check=ConnectionPool.check_connection,
                          kwargs={"application_name": "webhook",
                                  "options": "-c statement_timeout=3000"})
    client = listener_redis(settings.effective_redis_url)
    auth = Authenticator(options.secrets, SecretFile(options.secrets_file), options.hmac_secret)
    if not auth.has_secrets:
        log.warning("no webhook secret yet: every delivery is refused (401) until "
                    "`eva00 webhooks register` stores one or EVA00_WEBHOOK_SECRETS is set")
    return Listener(options, auth, Intake(options, client, pool), CachedHealth(health_checks(pool, client)))


def listener_redis(url: str) -> redis.Redis:
    """Short timeouts and one immediate retry (redis-py's default backs off for seconds): Redis
    away must become a 503 well within Procore's 5 s, not a timeout on Procore's side."""
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1,
                                health_check_interval=30, retry=Retry(NoBackoff(), 1))
