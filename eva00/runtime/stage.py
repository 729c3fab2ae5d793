"""The loop every stage process runs: read, handle in one PostgreSQL transaction, forward, repeat.

Delivery guarantee: at least once, with exactly one effect. The handler's work commits in one
PostgreSQL transaction; only after COMMIT does one Redis MULTI add the downstream entries and
acknowledge the upstream one. A crash before COMMIT rolls back and the entry is redelivered; a
crash between COMMIT and the MULTI redelivers an entry whose effect is already there, and the
handler, being idempotent, changes nothing and forwards what the committed rows say. A handler
declares the message types it accepts; any other type goes to the dead letters at once. After
``max_deliveries`` an entry goes to the dead letters (stream and table, with its last error) and
the stage goes on. Middleware (eva00/runtime/middleware.py) runs at fixed points around each
message: inside its transaction before and after the handler, after COMMIT, after a dead letter.
A handler whose work waits on the network (the fetcher: rate limiter, HTTP) is a FetchThenRecord:
it fetches with no transaction open and no connection held, then records what it fetched in one
short transaction; the guarantee above is unchanged, since nothing is acknowledged before that
COMMIT and a redelivered message fetches again. SIGTERM finishes the current message and the
rest of its batch (already delivered to this consumer) and exits 0, leaving nothing pending for
this consumer.
Redis or PostgreSQL outages are waited out in-process with capped backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Protocol, TypeVar, runtime_checkable

import orjson
import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.errors import Fatal, Poison, Retryable, Skip, is_pg_outage
from eva00.messages import Message, decode
from eva00.runtime.backoff import capped_backoff_s
from eva00.runtime.bus import Bus, Delivery, Outgoing, cap_unconsumed, trim
from eva00.runtime.middleware import Middleware

log = logging.getLogger(__name__)

T = TypeVar("T")


def _pg_text(value: bytes | str) -> str:
    """Any bytes as text PostgreSQL accepts (text and jsonb refuse NUL; keys may not be UTF-8)."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    return text.replace("\x00", "\ufffd")


# SQLSTATEs psycopg files under OperationalError that are about the statement, not the server:
# program limits (class 54, e.g. an index row too large for this message's payload) and a
# cancelled statement (57014, statement_timeout). Waiting them out in-process would stall the
# stage on one message forever; as failures of the message they are retried, then dead-lettered.
_STATEMENT_SQLSTATES = ("54", "57014")


def _pg_unavailable(exc: psycopg.Error) -> bool:
    return is_pg_outage(exc) and not (exc.sqlstate or "").startswith(_STATEMENT_SQLSTATES)


class Handler(Protocol):
    """A stage's work on one message. ``accepts`` names the message types it takes: the Stage
    dead-letters any other type before the handler sees it, naming that type."""

    @property
    def accepts(self) -> tuple[type[Message], ...]: ...

    def __call__(self, conn: psycopg.Connection, message: Message,
                 delivery: Delivery) -> Sequence[Outgoing]: ...


HandleFn = Callable[[psycopg.Connection, Message, Delivery], Sequence[Outgoing]]

# Opens a short read-only transaction on a pooled connection; both end when the block ends.
Reads = Callable[[], AbstractContextManager[psycopg.Connection]]


@runtime_checkable
class FetchThenRecord(Protocol):
    """A stage's work on one message in two steps, for work that waits on the network.

    ``fetch`` runs with no transaction open and no connection checked out: what it must read
    first it reads in ``with reads() as conn:`` blocks, each a short read-only transaction that
    it closes before its next wait. Its result goes to ``record``, which writes it in the
    message's one transaction (with the middleware's ``before_record`` and ``after_handle``
    around it) and returns the outgoing entries. A redelivered message is fetched again, so
    ``record`` must be idempotent like any handler."""

    @property
    def accepts(self) -> tuple[type[Message], ...]: ...

    def fetch(self, message: Message, delivery: Delivery, reads: Reads) -> Any: ...

    def record(self, conn: psycopg.Connection, message: Message, delivery: Delivery,
               fetched: Any) -> Sequence[Outgoing]: ...


class Accepting:
    """A plain function as a Handler of the message types it names (see ``accepting``)."""

    def __init__(self, accepts: tuple[type[Message], ...], handle: HandleFn) -> None:
        self.accepts = accepts
        self._handle = handle

    def __call__(self, conn: psycopg.Connection, message: Message,
                 delivery: Delivery) -> Sequence[Outgoing]:
        return self._handle(conn, message, delivery)


def accepting(*types: type[Message]) -> Callable[[HandleFn], Accepting]:
    """Declare the message types a handler written as a function (or wired from outside) takes."""
    def declare(handle: HandleFn) -> Accepting:
        return Accepting(types, handle)

    return declare


def consumer_name(stage: str) -> str:
    """Stable across restarts under supervisord, so a restarted process finds its own pending."""
    return os.environ.get("SUPERVISOR_PROCESS_NAME") or f"{stage}-{socket.gethostname()}-{os.getpid()}"


@dataclass
class StageStats:
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    errors: list[str] = field(default_factory=list)


class Heartbeat:
    """While a batch is being handled, keeps its entries from looking idle to peers.

    A handler may wait far longer than claim_idle_ms (the rate limiter, a 65 s pause after a
    connection error, a slow answer); without this a live peer would reclaim the entry and fetch
    it a second time. A thread touches the batch's unfinished entries every third of
    claim_idle_ms; a process that dies stops touching, so its entries are reclaimed as before."""

    def __init__(self, bus: Bus, deliveries: Sequence[Delivery], claim_idle_ms: int) -> None:
        self.bus = bus
        self.pending = {d.entry_id: d for d in deliveries}
        self.interval_s = claim_idle_ms / 3000
        self.claim_idle_ms = claim_idle_ms
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self.pending:
            self._thread = threading.Thread(target=self._run, name="stage-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def finished(self, delivery: Delivery) -> None:
        with self._lock:
            self.pending.pop(delivery.entry_id, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                by_input: dict[tuple[str, str], list[str]] = {}
                for d in self.pending.values():
                    by_input.setdefault((d.stream, d.group), []).append(d.entry_id)
            for (stream, group), entry_ids in by_input.items():
                try:
                    # Idle at least half an interval: ours since our last touch; an entry a peer
                    # claimed a moment ago (our touch came late) is not taken back.
                    self.bus.touch(stream, group, entry_ids, min_idle_ms=int(self.claim_idle_ms / 6))
                except redis.RedisError as exc:
                    log.debug("heartbeat on %s failed: %s", stream, exc)


class Stage:
    def __init__(self, name: str, settings: Settings, client: redis.Redis, pool: ConnectionPool,
                 inputs: Sequence[tuple[str, str]], handler: Handler | FetchThenRecord, *,
                 middleware: Sequence[Middleware] = (), consumer: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 reclaim_every_s: float | None = None, trim_every_s: float = 60.0) -> None:
        self.name = name
        self.settings = settings
        self.pool = pool
        self.inputs = list(inputs)  # in priority order: earlier streams are drained first
        self.handler = handler
        self.middleware = list(middleware)  # run in this order at each hook
        self.bus = Bus(client, consumer or consumer_name(name), maxlen=settings.stream_maxlen)
        self.clock, self.sleep = clock, sleep
        self.reclaim_every_s = (reclaim_every_s if reclaim_every_s is not None
                                else settings.claim_idle_ms / 2000)
        self.trim_every_s = trim_every_s
        self.stopping = False
        self.stats = StageStats()
        self._next_reclaim = 0.0
        self._next_trim = 0.0
        self._fed: set[str] = set()  # streams this stage has forwarded to

    # --- lifecycle ---

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("%s: signal %d, finishing the current message", self.name, signum)
        self.stopping = True

    def run(self, after_step: Callable[[], None] | None = None) -> int:
        """Step until stopped, calling ``after_step`` (a program's housekeeping) after each step."""
        self._until_redis_ok(self._ensure_groups)
        log.info("%s: consuming %s as %s", self.name, self.inputs, self.bus.consumer)
        while not self.stopping:
            self.step()
            if after_step is not None:
                after_step()
        log.info("%s: stopped after %d messages", self.name, self.stats.handled)
        return 0

    def _ensure_groups(self) -> None:
        for stream, group in self.inputs:
            self.bus.ensure_group(stream, group)

    # --- one step: at most one batch ---

    def step(self) -> int:
        """Handle what one read returns; returns how many entries were handled."""
        deliveries = self._until_redis_ok(self._next_batch)
        # Every entry of the batch is already in this consumer's pending list, so a SIGTERM
        # mid-batch still finishes the batch (at most EVA00_STREAM_BATCH entries): exiting
        # after the current one would leave the rest pending until a restart or a reclaim.
        with Heartbeat(self.bus, deliveries, self.settings.claim_idle_ms) as heartbeat:
            for delivery in deliveries:
                self.process(delivery)
                heartbeat.finished(delivery)
        self._housekeeping()
        return len(deliveries)

    def _next_batch(self) -> list[Delivery]:
        now = self.clock()
        if now >= self._next_reclaim:
            self._next_reclaim = now + self.reclaim_every_s
            for stream, group in self.inputs:
                claimed = self.bus.reclaim(stream, group, min_idle_ms=self.settings.claim_idle_ms,
                                           count=self.settings.stream_batch)
                if claimed:
                    self.stats.reclaimed += len(claimed)
                    return claimed
        # Non-blocking pass over higher-priority streams first, then block on all in turn.
        for stream, group in self.inputs[:-1]:
            batch = self.bus.read(stream, group, count=self.settings.stream_batch, block_ms=None)
            if batch:
                return batch
        stream, group = self.inputs[-1]
        block_ms = self.settings.stream_block_ms
        if len(self.inputs) > 1:
            # Short blocks on the last stream so priority entries are noticed quickly.
            block_ms = min(block_ms, 250)
        return self.bus.read(stream, group, count=self.settings.stream_batch, block_ms=block_ms)

    def _housekeeping(self) -> None:
        now = self.clock()
        if now < self._next_trim:
            return
        self._next_trim = now + self.trim_every_s
        for stream, _group in self.inputs:
            try:
                trim(self.bus.redis, stream, keep_at_least=1000)
            except redis.RedisError as exc:
                log.warning("%s: trimming %s failed: %s", self.name, stream, exc)
        # Streams we feed that no stage of ours reads (the ingest feed) have nobody else to trim them.
        for stream in sorted(self._fed - {s for s, _g in self.inputs} - keys.CONSUMED_STREAMS):
            try:
                cap_unconsumed(self.bus.redis, stream, self.settings.stream_maxlen)
            except redis.RedisError as exc:
                log.warning("%s: capping %s failed: %s", self.name, stream, exc)

    # --- one message ---

    def process(self, delivery: Delivery) -> None:
        if delivery.times_delivered > self.settings.max_deliveries:
            self._dead_letter(delivery, f"delivered {delivery.times_delivered} times without success")
            return
        try:
            message = self._accepted(decode(delivery.fields))
            if isinstance(self.handler, FetchThenRecord):
                outgoing = self._fetch_then_record(self.handler, message, delivery)
            else:
                outgoing = self._until_pg_ok(lambda: self._handle_in_transaction(message, delivery))
        except Skip as exc:
            log.info("%s: %s skipped: %s", self.name, delivery.entry_id, exc)
            self._finish(delivery, [])
            return
        except Poison as exc:
            self._dead_letter(delivery, f"poison: {exc}")
            return
        except Fatal as exc:
            self._dead_letter(delivery, f"fatal: {exc}")
            return
        except Retryable as exc:
            # Left pending: the reclaim pass takes it again after claim_idle_ms (a natural delay),
            # and the delivery count moves it to the dead letters if it never succeeds.
            self.stats.failed += 1
            log.warning("%s: %s will be retried: %s", self.name, delivery.entry_id, exc)
            self._dead_letter_if_last(delivery, exc)
            return
        except Exception as exc:
            self.stats.failed += 1
            self.stats.errors.append(repr(exc))
            log.exception("%s: %s failed (delivery %d)", self.name, delivery.entry_id,
                          delivery.times_delivered)
            self._dead_letter_if_last(delivery, exc)
            return
        self._finish(delivery, outgoing)
        self._after_commit(message, delivery, outgoing)

    def _after_commit(self, message: Message, delivery: Delivery, outgoing: Sequence[Outgoing]) -> None:
        for middleware in self.middleware:
            try:
                middleware.after_commit(message, delivery, outgoing)
            except Exception:  # the message is acknowledged: nothing left to fail
                log.exception("%s: %s after %s failed", self.name, type(middleware).__name__,
                              delivery.entry_id)

    def _finish(self, delivery: Delivery, outgoing: Sequence[Outgoing]) -> None:
        self._until_redis_ok(lambda: self.bus.forward(delivery, outgoing))
        self._fed.update(stream for stream, _message in outgoing)
        self.stats.handled += 1

    def _accepted(self, message: Message) -> Message:
        if not isinstance(message, self.handler.accepts):
            taken = ", ".join(t.TYPE for t in self.handler.accepts)
            raise Poison(f"the {self.name} stage does not accept {message.TYPE} messages (it takes {taken})")
        return message

    def _handle_in_transaction(self, message: Message, delivery: Delivery) -> Sequence[Outgoing]:
        assert not isinstance(self.handler, FetchThenRecord)
        with self.pool.connection() as conn, conn.transaction():
            answered = self._answered(conn, message, delivery, before_record=False)
            if answered is not None:
                return answered
            outgoing = self.handler(conn, message, delivery)
            for middleware in self.middleware:
                middleware.after_handle(conn, message, delivery, outgoing)
            return outgoing

    def _fetch_then_record(self, handler: FetchThenRecord, message: Message,
                           delivery: Delivery) -> Sequence[Outgoing]:
        """Three steps, each waited through a PostgreSQL outage on its own: a record that meets
        one keeps what was fetched instead of fetching it again."""
        def before_fetch() -> Sequence[Outgoing] | None:
            with self.pool.connection() as conn, conn.transaction():
                return self._answered(conn, message, delivery, before_record=False)

        def record() -> Sequence[Outgoing]:
            with self.pool.connection() as conn, conn.transaction():
                answered = self._answered(conn, message, delivery, before_record=True)
                if answered is not None:
                    return answered
                outgoing = handler.record(conn, message, delivery, fetched)
                for middleware in self.middleware:
                    middleware.after_handle(conn, message, delivery, outgoing)
                return outgoing

        answered = self._until_pg_ok(before_fetch)
        if answered is not None:
            return answered
        fetched = self._until_pg_ok(lambda: handler.fetch(message, delivery, self._reads))
        return self._until_pg_ok(record)

    def _answered(self, conn: psycopg.Connection, message: Message, delivery: Delivery, *,
                  before_record: bool) -> Sequence[Outgoing] | None:
        """What the first middleware that answers the message says (None: the handler works)."""
        for middleware in self.middleware:
            hook = middleware.before_record if before_record else middleware.before_handle
            answered = hook(conn, message, delivery)
            if answered is not None:
                return answered
        return None

    @contextmanager
    def _reads(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            yield conn

    def _dead_letter_if_last(self, delivery: Delivery, exc: Exception) -> None:
        """The last allowed delivery failed: dead-letter now, with the error that made it fail
        (waiting for one more delivery would cost another claim_idle_ms and lose the error)."""
        if delivery.times_delivered >= self.settings.max_deliveries:
            self._dead_letter(delivery, f"failed {delivery.times_delivered} deliveries; "
                                        f"last error: {exc!r}")

    def _dead_letter(self, delivery: Delivery, error: str) -> None:
        """Record a message that can never succeed; never raises for what the message holds."""
        log.error("%s: %s dead-lettered: %s", self.name, delivery.entry_id, error)
        fields = {_pg_text(k): _pg_text(v) for k, v in delivery.fields.items()}
        error = _pg_text(error)

        def record() -> None:
            with self.pool.connection() as conn:
                conn.execute(
                    "INSERT INTO dead_letters (stream, group_name, message_id, fields, error,"
                    " deliveries) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (stream, message_id) DO NOTHING",
                    (delivery.stream, delivery.group, delivery.entry_id,
                     orjson.dumps(fields).decode(), error, delivery.times_delivered))

        self._until_pg_ok(record)
        self._until_redis_ok(lambda: self.bus.dead_letter(delivery, error))
        self.stats.dead_lettered += 1
        try:
            message: Message | None = decode(delivery.fields)
        except Exception:  # an undecodable entry: the middleware learns only that it is gone
            message = None
        for middleware in self.middleware:
            try:
                middleware.after_dead_letter(message, delivery, error)
            except Exception:  # the message is dead-lettered: nothing left to fail
                log.exception("%s: %s after dead-lettering %s failed", self.name,
                              type(middleware).__name__, delivery.entry_id)

    # --- outages ---

    def _until_redis_ok(self, action: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return action()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                attempt += 1
                if self.stopping and attempt > 3:
                    raise SystemExit(0) from exc
                log.warning("%s: Redis unavailable (%s); retry %d", self.name, exc, attempt)
                self.sleep(capped_backoff_s(attempt, cap_s=self.settings.outage_backoff_cap_s))

    def _until_pg_ok(self, action: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return action()
            except psycopg.Error as exc:
                # Only an unreachable server is waited out here. Anything else (a constraint, a
                # handler's own OSError) fails this message, which is retried and dead-lettered.
                if not _pg_unavailable(exc):
                    raise
                attempt += 1
                if self.stopping and attempt > 3:
                    raise SystemExit(0) from exc
                first_line = str(exc).splitlines()[0] if str(exc) else exc
                if (exc.sqlstate or "").startswith("40"):
                    # A deadlock or serialization failure between two stages: the transaction
                    # rolled back whole and simply runs again; the server is fine.
                    log.info("%s: transaction conflict (%s); retry %d", self.name, first_line, attempt)
                else:
                    log.warning("%s: PostgreSQL unavailable (%s); retry %d", self.name, first_line, attempt)
                self.sleep(capped_backoff_s(attempt, cap_s=self.settings.outage_backoff_cap_s))
