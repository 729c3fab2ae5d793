"""From an authenticated webhook event to at most one queued re-fetch: dedupe, debounce, durability.

Delivery guarantee: an event answered 2xx is recorded in ``webhook_events`` and, unless ignored,
covered by a PollJob (mode ITEM, budget WEBHOOK) on ``eva00:sync:priority``; nothing is lost by a
crash at any point. The steps and what a crash between them leaves:

1. One PostgreSQL transaction: route the event (other company, unknown project or resource:
   recorded ``ignored``), INSERT it ``received`` (``ON CONFLICT (event_key) DO NOTHING``: a
   duplicate or a replay a day later inserts nothing), and for a delete mark the replica's row
   ``delete_pending``. COMMIT.
2. One atomic ``Bus.publish_unless_key``: unless the resource's debounce key exists, add the
   PollJob and SET the key to its entry id (EX ``debounce_ttl_s``).
3. UPDATE the row ``enqueued``; answer 202.

A crash after 1 leaves a ``received`` row: Procore's retry of the same event (a duplicate of an
unfinished row) and ``requeue_received`` (at start and periodically) both redo steps 2-3, and the
debounce key keeps that from doubling a job. PostgreSQL down: 503, nothing enqueued, Procore
retries. Redis down: 503, the row stays ``received`` until a retry or the requeue finishes it.

Debounce contract with the fetcher: the key ``eva00:webhook:debounce:{kind}:{project|0}:{id}``
(``keys.webhook_debounce_key``) exists while a webhook fetch of that item is queued and not
started. **DebounceRelease (webhooks/debounce.py), a middleware of the fetcher's stage, DELs it
when a fetcher starts an ITEM job, before its first request.** So a burst of updates while the
job waits becomes that one fetch (the fetch happens after all of them), and an update arriving
once the fetch has started queues a new job: no change is missed. The TTL only bounds how long a
job lost with Redis (or a fetcher breaking the contract) keeps suppressing hints; polling covers
that item meanwhile.

Delete events mark ``delete_pending`` on the replica's row (``delete_pending_source`` 'webhook')
and queue the same ITEM fetch: the fetcher confirms (404 or recycle bin: soft delete; found: clear
the flag). The webhook only hints; what the fetch returns wins, and a webhook's flag never counts as
the mass-delete guard's second signal (replica/deletes.py).

Flood cap: at most ``jobs_per_minute`` ITEM jobs per clock minute (a Redis counter per minute,
``keys.webhook_jobs_minute_key``). Beyond it an event folds into one INCREMENTAL poll of its
(kind, project) on the priority stream, published unless that poll is already pending (the
scheduler's pending marker, released when the poll ends): ten thousand distinct ids in a minute cost
the cap plus one poll per kind and project, not ten thousand fetches.

Bodies that cannot be parsed or stored (``record_unreadable``) are kept raw, escaped and truncated
to ``RAW_BODY_MAX_BYTES``, with the reason; the row's key is the body's digest, so a redelivery
adds nothing.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import psycopg
import redis
from psycopg import sql
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.kinds import table_for
from eva00.messages import BudgetClass, PollJob, PollMode
from eva00.runtime.bus import Bus
from eva00.webhooks import events
from eva00.webhooks.events import WebhookEvent
from eva00.webhooks.options import WebhookOptions
from eva00.webhooks.resources import PARENT_RESOURCES, is_company_level, kind_for

log = logging.getLogger(__name__)


class EventStatus(StrEnum):
    """webhook_events.status. RECEIVED -> ENQUEUED | IGNORED; ENQUEUED -> PROCESSED (fetcher)."""

    RECEIVED = "received"  # recorded, its fetch not queued yet
    ENQUEUED = "enqueued"  # a queued PollJob covers it (queued for it, or debounced into one)
    IGNORED = "ignored"  # nothing to fetch: other company, unknown project/resource, bad payload
    PROCESSED = "processed"  # the fetch that covers it is done


RAW_BODY_MAX_BYTES = 8 * 1024  # of an unreadable body kept for the operator (escaped, <= 4x this)
JOB_COUNTER_TTL_S = 120  # a minute's counter outlives its minute, then goes


class Unavailable(Exception):
    """PostgreSQL or Redis cannot be reached: answer 503 so Procore retries."""


@dataclass(frozen=True)
class Target:
    """The one record an event asks to re-fetch."""

    kind: str
    project_id: int | None
    item_id: int


@dataclass(frozen=True)
class Outcome:
    http_status: int
    result: str  # enqueued | debounced | folded | duplicate | ignored | kept_raw
    detail: str = ""


def route(event: WebhookEvent, company_id: int) -> Target | str:
    """The record to re-fetch, or why there is none (the project check needs the database)."""
    if event.company_id != company_id:
        return f"company {event.company_id} is not ours"
    name, item_id = event.resource_name, event.resource_id
    if name in PARENT_RESOURCES:
        name, item_id = PARENT_RESOURCES[name], _parent_id(event, PARENT_RESOURCES[name])
        if item_id is None:
            return f"{event.resource_name} event names no {name[:-1]} id"
    kind = kind_for(name)
    if kind is None:
        return f"resource {event.resource_name!r} is not replicated"
    if item_id is None:
        return f"resource id {event.payload.get('resource_id')!r} is not numeric"
    if is_company_level(kind):
        return Target(kind, None, item_id)
    if event.project_id is None:
        return f"{event.resource_name} event has no project_id"
    return Target(kind, event.project_id, item_id)


def _parent_id(event: WebhookEvent, parent_name: str) -> int | None:
    for name, related_id in event.related:
        if name == parent_name:
            return related_id
    return None


class Intake:
    def __init__(self, options: WebhookOptions, client: redis.Redis, pool: ConnectionPool, *,
                 clock: Callable[[], float] = time.time, pool_timeout_s: float = 2.0) -> None:
        self.options = options
        self.redis = client
        self.pool = pool
        self.clock = clock
        self.pool_timeout_s = pool_timeout_s
        # Queues a re-fetch unless one for the same resource is already queued (its debounce key).
        self.bus = Bus(client, "webhook")
        self._delete_pending_tables: frozenset[str] | None = None

    # --- one event ---

    def accept(self, event: WebhookEvent) -> Outcome:
        with self._connection() as conn:
            with conn.transaction():
                target = self._route(conn, event)
                row_id = self._record(conn, event, target)
                if row_id is None:
                    return Outcome(200, "duplicate", "already recorded")
                if isinstance(target, str):
                    return Outcome(202, "ignored", target)
                if event.is_delete:
                    self._mark_delete_pending(conn, target)
            return self._enqueue(conn, row_id, target, event)

    def record_unreadable(self, body: bytes, problem: str) -> Outcome:
        """Keep an authenticated body we cannot parse or store as an event, once, raw (escaped and
        truncated) with the reason, and its JSON when PostgreSQL can hold it; answered 200."""
        key = "raw:" + hashlib.sha256(body).hexdigest()
        detail = f"{problem} ({len(body)} bytes" + (
            f", kept the first {RAW_BODY_MAX_BYTES})" if len(body) > RAW_BODY_MAX_BYTES else ")")
        with self._connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO webhook_events (event_key, payload, raw_body, status, detail)"
                " VALUES (%s, %s::jsonb, %s, %s, %s) ON CONFLICT (event_key) DO NOTHING",
                (key, storable_json(body), escape_raw(body[:RAW_BODY_MAX_BYTES]),
                 EventStatus.IGNORED.value, detail[:500]))
        return Outcome(200, "kept_raw", problem[:200])

    def _route(self, conn: psycopg.Connection, event: WebhookEvent) -> Target | str:
        target = route(event, self.options.company_id)
        if isinstance(target, Target) and target.project_id is not None \
                and not self._project_is_live(conn, target.project_id):
            return f"project {target.project_id} is not in the replica"
        return target

    def _record(self, conn: psycopg.Connection, event: WebhookEvent,
                target: Target | str) -> int | None:
        """The row to finish: a new one, or an earlier copy left unfinished (received)."""
        status = EventStatus.IGNORED if isinstance(target, str) else EventStatus.RECEIVED
        row = conn.execute(
            "INSERT INTO webhook_events (event_key, company_id, project_id, resource_name,"
            " resource_id, event_type, api_version, payload, status, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
            " ON CONFLICT (event_key) DO NOTHING RETURNING id",
            (event.event_key, event.company_id, event.project_id, event.resource_name,
             event.resource_id, event.event_type, event.api_version,
             orjson.dumps(event.payload).decode(), status.value,
             target if isinstance(target, str) else None)).fetchone()
        if row is not None:
            return int(row[0])
        unfinished = conn.execute(
            "SELECT id FROM webhook_events WHERE event_key = %s AND status = %s FOR UPDATE",
            (event.event_key, EventStatus.RECEIVED.value)).fetchone()
        if unfinished is None:
            return None
        if isinstance(target, str):
            self._set_status(conn, int(unfinished[0]), EventStatus.IGNORED, target)
        return int(unfinished[0])

    def _enqueue(self, conn: psycopg.Connection, row_id: int, target: Target,
                 event: WebhookEvent) -> Outcome:
        try:
            slot = self._take_job_slot()
            outcome = self._fold(target) if slot is None else self._queue_item(target, event, slot)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis: {type(exc).__name__}") from exc
        try:
            with conn.transaction():
                self._set_status(conn, row_id, EventStatus.ENQUEUED, outcome.detail)
        except psycopg.Error as exc:
            # The job is queued and the event recorded: the answer stands; the row stays
            # 'received' and a later requeue finds the job debounced.
            log.warning("event row %d: status not updated (%s)", row_id, type(exc).__name__)
        return outcome

    def _queue_item(self, target: Target, event: WebhookEvent, slot: str) -> Outcome:
        job = PollJob(kind=target.kind, project_id=target.project_id, mode=PollMode.ITEM,
                      budget=BudgetClass.WEBHOOK, reason=f"webhook:{event.event_type}",
                      item_id=target.item_id, requested_at=self.clock())
        entry_id = self.bus.publish_unless_key(
            keys.STREAM_SYNC_PRIORITY, job, ttl_s=self.options.debounce_ttl_s,
            key=keys.webhook_debounce_key(target.kind, target.project_id, target.item_id))
        if entry_id is None:
            self.redis.decr(slot)  # nothing queued: the slot goes back
            return Outcome(202, "debounced", "covered by the fetch already queued")
        return Outcome(202, "enqueued", f"fetch queued as {entry_id}")

    def _take_job_slot(self) -> str | None:
        """One of this minute's ``jobs_per_minute`` ITEM jobs (the counter holding it), or None
        when they are all taken. Taken before publishing and given back when debounced, so
        concurrent requests never queue more than the cap."""
        counter = keys.webhook_jobs_minute_key(int(self.clock() // 60))
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(counter)
        pipe.expire(counter, JOB_COUNTER_TTL_S)
        taken = int(pipe.execute()[0])
        return counter if taken <= self.options.jobs_per_minute else None

    def _fold(self, target: Target) -> Outcome:
        """Over the cap: one poll of the kind covers the event, unless one is already pending."""
        marker = keys.job_pending_key(f"{target.kind}:{PollMode.INCREMENTAL}", target.project_id)
        job = PollJob(kind=target.kind, project_id=target.project_id, mode=PollMode.INCREMENTAL,
                      budget=BudgetClass.WEBHOOK, reason="webhook:flood", requested_at=self.clock(),
                      pending_key=marker)
        entry_id = self.bus.publish_unless_key(keys.STREAM_SYNC_PRIORITY, job, key=marker,
                                               ttl_s=self.options.debounce_ttl_s)
        if entry_id is None:
            return Outcome(202, "folded", f"over {self.options.jobs_per_minute} webhook fetches this"
                           f" minute: covered by the {target.kind} poll already pending")
        return Outcome(202, "folded", f"over {self.options.jobs_per_minute} webhook fetches this"
                       f" minute: {target.kind} poll queued as {entry_id}")

    # --- the replica ---

    def _project_is_live(self, conn: psycopg.Connection, project_id: int) -> bool:
        row = conn.execute(
            "SELECT 1 FROM projects WHERE kind = 'project' AND procore_id = %s AND NOT is_deleted",
            (project_id,)).fetchone()
        return row is not None

    def _mark_delete_pending(self, conn: psycopg.Connection, target: Target) -> None:
        table = table_for(target.kind)
        if table not in self._tables_with_delete_pending(conn):
            return
        # Marked as the webhook's: never the mass-delete guard's second signal (replica/deletes.py).
        conn.execute(sql.SQL("UPDATE {} SET delete_pending = true, delete_pending_source = 'webhook'"
                             " WHERE kind = %s AND procore_id = %s AND coalesce(project_id, 0) ="
                             " coalesce(%s, 0) AND NOT is_deleted AND NOT delete_pending"
                             ).format(sql.Identifier(table)),
                     (target.kind, target.item_id, target.project_id))

    def _tables_with_delete_pending(self, conn: psycopg.Connection) -> frozenset[str]:
        if self._delete_pending_tables is None:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.columns WHERE column_name ="
                " 'delete_pending_source' AND table_schema = current_schema()").fetchall()
            self._delete_pending_tables = frozenset(str(row[0]) for row in rows)
        return self._delete_pending_tables

    @staticmethod
    def _set_status(conn: psycopg.Connection, row_id: int, status: EventStatus,
                    detail: str) -> None:
        conn.execute("UPDATE webhook_events SET status = %s, detail = %s WHERE id = %s",
                     (status.value, detail, row_id))

    # --- recovery ---

    def requeue_received(self, older_than_s: float | None = None, limit: int = 500) -> int:
        """Finish events left 'received' by a crash or an outage; returns how many were finished."""
        grace_s = self.options.requeue_grace_s if older_than_s is None else older_than_s
        finished = 0
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT id, event_key, payload FROM webhook_events WHERE status = %s"
                " AND received_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s",
                (EventStatus.RECEIVED.value, grace_s, limit)).fetchall()
            conn.commit()
            for row_id, event_key, payload in rows:
                self._finish_row(conn, int(row_id), str(event_key), payload)
                finished += 1
        if finished:
            log.info("requeued %d webhook events left received", finished)
        return finished

    def _finish_row(self, conn: psycopg.Connection, row_id: int, event_key: str,
                    payload: Any) -> None:
        try:
            event = events.parse(payload)
        except events.InvalidPayload as exc:
            with conn.transaction():
                self._set_status(conn, row_id, EventStatus.IGNORED, f"invalid payload: {exc}")
            return
        with conn.transaction():
            target = self._route(conn, event)
            if isinstance(target, str):
                self._set_status(conn, row_id, EventStatus.IGNORED, target)
                return
            if event.is_delete:
                self._mark_delete_pending(conn, target)
        self._enqueue(conn, row_id, target, event)
        log.debug("event %s requeued", event_key)

    # --- plumbing ---

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        try:
            with self.pool.connection(timeout=self.pool_timeout_s) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # PoolTimeout (no connection within pool_timeout_s) is an OperationalError too.
            raise Unavailable(f"PostgreSQL: {type(exc).__name__}") from exc


def escape_raw(body: bytes) -> str:
    """Printable ASCII for a text column: backslash escapes for NUL, control and non-ASCII bytes
    (and for the backslash itself), so nothing is lost and PostgreSQL refuses nothing."""
    return codecs.escape_encode(body)[0].decode("ascii")


def storable_json(body: bytes) -> str | None:
    """The body as jsonb input when it is JSON PostgreSQL accepts (no NUL), else None."""
    try:
        document = events.load_body(body)
    except events.MalformedJson:
        return None
    return None if events.holds_nul(document) else orjson.dumps(document).decode()
