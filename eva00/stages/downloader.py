"""The downloader stage: file jobs -> verified bytes in content-addressed storage -> PostgreSQL.

Delivery guarantee: at least once, with exactly one effect. The job's record_files row is locked
(FOR UPDATE SKIP LOCKED) for the whole download, so a duplicate job (the reconciler, a peer that
reclaimed a long download's entry) is acknowledged at once while the holder finishes; a killed
holder's lock goes with its connection. Bytes stream into a stable temp file per row while
SHA-256 is computed; the file is placed atomically (FileStore) before the transaction records the
files row and record_files.status = 'downloaded' in one commit; a crash before the commit
re-downloads, resuming the temp file with Range + If-Range, and dedups. Every outcome of a
transfer is committed to the row (attempts, last_error, failed/expired); a row left pending
without a job (Redis wiped, a failed attempt awaiting its retry) is re-enqueued by
requeue_pending(). Producers add each job to the stream of its priority (keys.file_stream),
which the downloading stage drains in order (submittals first); at most ``limit``
transfers run at once across every process (DownloadSlots). Below the disk's free-space share the
handler waits with a critical alert open, and resolves it when space returns.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.errors import Poison, Retryable, Skip
from eva00.kinds import PRIORITY
from eva00.messages import FileJob, IngestEvent, Message, StoredFileJob, decode
from eva00.procore import build_client
from eva00.procore.errors import ProcoreUnavailable
from eva00.procore.transfer import (
    Fetched,
    LimitExceeded,
    LinkUnusable,
    Transfer,
    TransferFailed,
)
from eva00.replica import files
from eva00.replica.files import FileState, LinkRow
from eva00.replica.filestore import DiskLow, FileStore
from eva00.runtime.alerts import raise_alert, resolve_alert
from eva00.runtime.bus import Bus, Delivery, Outgoing, owed_entries
from eva00.runtime.program import Program

log = logging.getLogger(__name__)

# --- Redis keys of this stage (lost with Redis like any other; requeue_pending heals) ---
# File jobs by priority, 1 (submittals) .. 5 (other): the stage reads them in this order.
STREAM_FILES_BY_PRIORITY = keys.STREAM_FILES_BY_PRIORITY
# What the downloading stage reads, most urgent first (one job per read, see processes/downloader.py),
# so an urgent job never waits behind a backlog of photos.
DOWNLOAD_INPUTS: tuple[tuple[str, str], ...] = tuple(
    (stream, keys.GROUP_DOWNLOADERS) for stream in STREAM_FILES_BY_PRIORITY)
# The critical alert open while downloads pause for lack of disk space.
DISK_ALERT_KEY = "disk-low:files"
# One alert per link that broke a download limit (too large, too slow): it failed for good.
LIMIT_ALERT_PREFIX = "download-limit:"

OUTAGE_WAIT_S = 600.0  # longest a download waits for Procore in-process before it counts as a failure
THUMBNAIL_TYPES = ("application/pdf", "image/jpeg", "image/png", "image/gif", "image/tiff", "image/bmp")
TEXT_TYPES = ("application/pdf",)


# --- at most N transfers across every process: a Redis semaphore with expiring leases ---

# A sorted set holder -> lease expiry (Redis server time, so hosts' clocks do not matter). Expired
# leases (a process killed mid-download) are dropped before counting.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
  return 1
end
return 0
"""


class DownloadSlots:
    def __init__(self, client: redis.Redis, limit: int, *, lease_s: float = 60.0,
                 key: str = keys.DOWNLOAD_SLOTS, poll_s: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.redis, self.limit, self.lease_s, self.key = client, limit, lease_s, key
        self.poll_s, self.sleep, self.monotonic = poll_s, sleep, monotonic
        self._acquire = client.register_script(_ACQUIRE)

    def try_acquire(self, holder: str) -> bool:
        """Take a slot (or extend the one ``holder`` has); False when all are taken."""
        return bool(self._acquire(keys=[self.key], args=[holder, self.limit, self.lease_s]))

    def release(self, holder: str) -> None:
        self.redis.zrem(self.key, holder)

    @contextlib.contextmanager
    def held(self, holder: str, should_stop: Callable[[], bool]) -> Iterator[Callable[[], None]]:
        """Wait for a slot; yield a renew() to call while working (it extends the lease now and
        then, so only a dead process's lease ever runs out)."""
        while not self.try_acquire(holder):
            if should_stop():
                raise Retryable("stopping while waiting for a download slot")
            self.sleep(self.poll_s)
        renewed_at = self.monotonic()

        def renew() -> None:
            nonlocal renewed_at
            if self.monotonic() - renewed_at >= self.lease_s / 3:
                renewed_at = self.monotonic()
                if not self.try_acquire(holder):
                    log.warning("download slot lease of %s ran out and every slot is taken", holder)

        try:
            yield renew
        finally:
            with contextlib.suppress(redis.RedisError):
                self.release(holder)


# --- disk guard ---

class DiskGuard:
    """Downloads wait while free space is below the share; a critical alert says so meanwhile."""

    def __init__(self, store: FileStore, pool: ConnectionPool, *, poll_s: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.store, self.pool, self.poll_s, self.sleep = store, pool, poll_s, sleep
        self._alerted: bool | None = None  # None: unknown (an earlier process may have left one open)

    def wait_for_space(self, should_stop: Callable[[], bool]) -> None:
        while True:
            try:
                self.store.check_space()
            except DiskLow as exc:
                self.disk_low(str(exc))
                if should_stop():
                    raise Retryable("stopping while the disk is low") from None
                self.sleep(self.poll_s)
                continue
            if self._alerted is not False:
                self._set_alert(None)
            return

    def disk_low(self, reason: str) -> None:
        if not self._alerted:
            self._set_alert(reason)

    def _set_alert(self, reason: str | None) -> None:
        # Its own committed transaction: the handler's stays open (and would roll back on retry).
        with self.pool.connection() as conn, conn.transaction():
            if reason is None:
                if resolve_alert(conn, DISK_ALERT_KEY):
                    log.warning("disk space is back: downloads resume")
            else:
                raise_alert(conn, DISK_ALERT_KEY, "critical", f"downloads paused: {reason}",
                            {"data_dir": str(self.store.root.parent)})
        self._alerted = reason is not None


# --- the stage handler ---

class Downloader:
    accepts: tuple[type[Message], ...] = (FileJob,)

    def __init__(self, transfer: Transfer, store: FileStore, slots: DownloadSlots, guard: DiskGuard, *,
                 max_attempts: int = 5, budget: str = "scheduled", holder: str | None = None) -> None:
        self.transfer, self.store, self.slots, self.guard = transfer, store, slots, guard
        self.max_attempts = max_attempts
        self.budget = budget
        self.holder = holder or f"downloader-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.should_stop: Callable[[], bool] = lambda: False  # the process wires Stage.stopping

    def __call__(self, conn: psycopg.Connection, message: Message, delivery: Delivery) -> Sequence[Outgoing]:
        if not isinstance(message, FileJob):
            raise Poison(f"the downloader takes file jobs, not {message.TYPE}")
        row = files.lock_link(conn, message)
        if row is None:
            raise Skip(f"{message.kind} {message.procore_id} {message.url_field}: no pending link"
                       " (unknown, or another downloader holds it)")
        if row.status == FileState.DOWNLOADED and row.sha256:
            return announce(conn, message, row.sha256)
        if row.status != FileState.PENDING:
            raise Skip(f"link {row.id} is {row.status}")
        return self._download(conn, row, message)

    def _download(self, conn: psycopg.Connection, row: LinkRow, job: FileJob) -> Sequence[Outgoing]:
        name = f"rf{row.id}"
        try:
            fetched = self._fetch_with_space(job, name)
        except LinkUnusable as exc:
            self.transfer.forget(name, drop_temp=True)
            if isinstance(exc, LimitExceeded):
                raise_alert(conn, f"{LIMIT_ALERT_PREFIX}{row.id}", "warning",
                            f"{job.kind} {job.procore_id} {job.url_field}: {exc}",
                            {"link_id": row.id, "kind": job.kind, "procore_id": job.procore_id})
            return self._finish(conn, row, FileState.EXPIRED if exc.expired else FileState.FAILED, str(exc))
        except TransferFailed as exc:
            final = row.attempts + 1 >= self.max_attempts
            if final:
                self.transfer.forget(name, drop_temp=True)
            log.warning("link %d: attempt %d failed: %s", row.id, row.attempts + 1, exc)
            return self._finish(conn, row, FileState.FAILED if final else FileState.PENDING, str(exc))
        return self._record(conn, row, job, fetched)

    def _fetch_with_space(self, job: FileJob, name: str) -> Fetched:
        """The transfer, waiting out a Procore outage (an open circuit, a shared pause) here: an
        outage is not the link's failure and must not use up the job's deliveries."""
        deadline = time.monotonic() + OUTAGE_WAIT_S
        while True:
            try:
                return self._fetch_once(job, name)
            except ProcoreUnavailable as exc:
                if self.should_stop() or time.monotonic() + exc.delay_s > deadline:
                    raise
                log.info("link %s: Procore unavailable (%s); waiting %.1f s", name, exc, exc.delay_s)
                resume_at = time.monotonic() + max(exc.delay_s, 0.05)
                while time.monotonic() < resume_at and not self.should_stop():
                    time.sleep(min(0.5, max(resume_at - time.monotonic(), 0.0)))

    def _fetch_once(self, job: FileJob, name: str) -> Fetched:
        for _round in range(3):
            self.guard.wait_for_space(self.should_stop)
            try:
                with self.slots.held(self.holder, self.should_stop) as renew:
                    return self.transfer.fetch(job.url, name, budget=self.budget, renew=renew)
            except DiskLow as exc:
                # Re-checked while writing: the partial temp file stays and resumes once space is back.
                self.guard.disk_low(f"disk space ran low during a download ({exc})")
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                self.guard.disk_low(f"no space left writing a download ({exc.strerror})")
        raise Retryable("the disk filled up during three downloads in a row")

    def _record(self, conn: psycopg.Connection, row: LinkRow, job: FileJob,
                fetched: Fetched) -> Sequence[Outgoing]:
        stored = self.store.commit_hashed(fetched.temp, fetched.sha256, fetched.size_bytes)
        self.transfer.forget(fetched.name)
        content_type = fetched.content_type or sniff_content_type(stored.path)
        files.add_file(conn, stored.sha256, stored.size_bytes, content_type,
                       str(stored.path.relative_to(self.store.root.parent)))
        files.mark_downloaded(conn, row.id, stored.sha256)
        if job.expected_size_bytes is not None and job.expected_size_bytes != stored.size_bytes:
            log.info("link %d: %d bytes, the record said %d", row.id, stored.size_bytes,
                     job.expected_size_bytes)
        log.info("link %d stored as %s (%d bytes%s%s)", row.id, stored.sha256[:12], stored.size_bytes,
                 ", deduplicated" if stored.deduplicated else "",
                 f", resumed at {fetched.resumed_from}" if fetched.resumed_from else "")
        return announce(conn, job, stored.sha256)

    @staticmethod
    def _finish(conn: psycopg.Connection, row: LinkRow, status: FileState, error: str) -> Sequence[Outgoing]:
        files.record_attempt(conn, row.id, status, error)
        if status is not FileState.PENDING:
            log.warning("link %d is %s: %s", row.id, status.value, error)
        return []


def announce(conn: psycopg.Connection, job: FileJob, sha256: str) -> list[Outgoing]:
    """What a stored link forwards, decided from committed rows so a redelivery forwards the same:
    the ingest event, and jobs for the derived data the file does not have yet."""
    found = files.stored_file(conn, sha256)
    event = IngestEvent(what="file", kind=job.kind, procore_id=job.procore_id, project_id=job.project_id,
                        sha256=sha256)
    out: list[Outgoing] = [(keys.STREAM_INGEST, event)]
    if found is None:
        return out
    size_bytes, content_type, has_thumbnail, has_text = found
    stored = StoredFileJob(sha256=sha256, content_type=content_type, size_bytes=size_bytes)
    if content_type in THUMBNAIL_TYPES and not has_thumbnail:
        out.append((keys.STREAM_THUMBNAILS, stored))
    if content_type in TEXT_TYPES and not has_text:
        out.append((keys.STREAM_TEXT, stored))
    return out


_MAGIC = ((b"%PDF-", "application/pdf"), (b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
          (b"GIF8", "image/gif"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))


def sniff_content_type(path: os.PathLike[str] | str) -> str:
    """Storage that answers application/octet-stream still serves PDFs and photos."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "application/octet-stream")


# --- the reconciler: pending links whose job was lost ---

def requeue_pending(conn: psycopg.Connection, client: redis.Redis, older_than_s: float, *,
                    limit: int = 1000) -> int:
    """Re-enqueue pending links untouched for ``older_than_s`` whose job no stream holds any more
    (Redis lost it, or a failed attempt waits for its retry). A link still queued behind a long
    backlog is left alone: requeueing it would only pile duplicates onto the backlog. Their
    updated_at moves first and commits before the jobs are added, so concurrent reconcilers never
    double a job and a crash in between only delays it."""
    queued = _queued_links(client)
    with conn.transaction():
        candidates = files.stale_pending(conn, older_than_s, limit)
        lost = [link_id for link_id, identity in candidates if identity not in queued]
        rows = files.touch_links(conn, lost)
    jobs = [FileJob(kind=kind, procore_id=procore_id, project_id=project_id, url_field=url_field, url=url,
                    procore_file_id=file_id, procore_version_id=version_id, expected_size_bytes=size,
                    priority=PRIORITY.get(kind, 5))
            for kind, procore_id, project_id, url_field, file_id, version_id, url, size in rows]
    Bus(client, "downloader-reconciler").publish_many(
        (keys.file_stream(job.priority), job) for job in jobs)
    if rows:
        log.info("re-enqueued %d pending file links", len(rows))
    return len(rows)


def _queued_links(client: redis.Redis) -> set[tuple[Any, ...]]:
    """Identities of the links some downloader stream still holds a job for."""
    found: set[tuple[Any, ...]] = set()
    for stream in STREAM_FILES_BY_PRIORITY:
        for fields in owed_entries(client, stream, keys.GROUP_DOWNLOADERS):
            try:
                job = decode(fields)
            except Exception:  # a broken entry is dead-lettered by the stage, not ours to count
                continue
            if isinstance(job, FileJob):
                found.add((job.kind, job.procore_id, job.project_id, job.url_field,
                           job.procore_file_id or "", job.procore_version_id or ""))
    return found


class Housekeeping:
    """What a downloader process does between batches: requeue lost links, purge stale temps."""

    def __init__(self, pool: ConnectionPool, client: redis.Redis, store: FileStore, *,
                 interval_s: float = 60.0, requeue_after_s: float = 600.0, temp_max_age_s: float = 7 * 86400,
                 clock: Callable[[], float] = time.time) -> None:
        self.pool, self.redis, self.store = pool, client, store
        self.interval_s, self.requeue_after_s = interval_s, requeue_after_s
        self.temp_max_age_s = temp_max_age_s
        self.clock = clock
        self._next_s = 0.0

    def maybe_run(self) -> None:
        now = self.clock()
        if now < self._next_s:
            return
        self._next_s = now + self.interval_s
        try:
            with self.pool.connection() as conn:
                requeue_pending(conn, self.redis, self.requeue_after_s)
            self.store.clean_temp(self.temp_max_age_s, now)
        except (psycopg.Error, redis.RedisError, OSError) as exc:
            log.warning("downloader housekeeping failed (next try in %.0f s): %s", self.interval_s, exc)


def build_downloader(settings: Settings, client: redis.Redis, pool: ConnectionPool,
                     **options: Any) -> Downloader:
    """The production wiring: the shared Procore client, storage under EVA00_DATA_DIR, N slots."""

    store = FileStore(settings.data_dir, min_free_ratio=settings.disk_free_min_ratio)
    transfer = Transfer(build_client(settings, client, pool), store, check_space=store.check_space)
    return Downloader(transfer, store, DownloadSlots(client, settings.download_concurrency),
                      DiskGuard(store, pool), **options)


def program_downloader(program: Program) -> Downloader:
    """The supervisord program's downloader: a transfer waiting for a slot, disk space or Procore
    gives up as soon as a stop is asked."""
    downloader = build_downloader(program.settings, program.redis, program.pool)
    downloader.should_stop = program.stopping
    return downloader


def program_housekeeping(program: Program, downloader: Downloader) -> Callable[[], None]:
    """What the program does between jobs: re-enqueue lost links, purge stale temp files."""
    settings = program.settings
    return Housekeeping(program.pool, program.redis, downloader.store,
                        interval_s=settings.download_housekeeping_s,
                        requeue_after_s=settings.download_requeue_after_s).maybe_run

