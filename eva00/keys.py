"""Every Redis stream, consumer group and key of EVA-00 Sync, one commented constant each.

Redis holds nothing durable: each key here can be lost at any moment (FLUSHALL, a restart without
its AOF) and the next poll heals it from PostgreSQL.
"""

from __future__ import annotations

PREFIX = "eva00"

# --- streams (each consumed by one group; a stage may read several) ---
# Poll jobs enqueued by the scheduler at each entity type's interval.
STREAM_SYNC_SCHEDULED = f"{PREFIX}:sync:scheduled"
# Webhook hints and on-demand refreshes; fetchers read it before scheduled work.
STREAM_SYNC_PRIORITY = f"{PREFIX}:sync:priority"
# Fetched pages of records, from fetchers to the differ.
STREAM_PAGES = f"{PREFIX}:pages"
# File jobs (record, URL field, Procore file/version id) by download priority, 1 (submittals) ..
# 5 (other): every producer (differ, reconciler, cover-sheet import) adds a job straight to the
# stream of its priority (file_stream), and downloaders drain them in this order.
STREAM_FILES_BY_PRIORITY: tuple[str, ...] = tuple(f"{PREFIX}:files:p{n}" for n in range(1, 6))
# Stored files waiting for a thumbnail.
STREAM_THUMBNAILS = f"{PREFIX}:thumbnails"
# Stored PDFs waiting for text extraction.
STREAM_TEXT = f"{PREFIX}:text"
# New files and changed records, announced for the downstream ingestion pipeline (OCR, embeddings).
STREAM_INGEST = f"{PREFIX}:ingest"
# Messages that failed too often or could not be decoded; also kept in PostgreSQL dead_letters.
STREAM_DEAD_LETTERS = f"{PREFIX}:deadletter"

# --- consumer groups ---
GROUP_FETCHERS = "fetchers"
GROUP_DIFFERS = "differs"
GROUP_DOWNLOADERS = "downloaders"
GROUP_THUMBNAILERS = "thumbnailers"
GROUP_TEXT = "text-extractors"
GROUP_INGEST = "ingest"
GROUP_DEAD_LETTER_AUDIT = "dead-letter-audit"

# The inputs EVA00_FETCHER_STREAMS may name, in the order a fetcher reading several drains them,
# so webhook and on-demand jobs never wait behind scheduled work in the same process.
FETCHER_INPUTS: dict[str, tuple[str, str]] = {
    "priority": (STREAM_SYNC_PRIORITY, GROUP_FETCHERS),
    "scheduled": (STREAM_SYNC_SCHEDULED, GROUP_FETCHERS),
}

# Every (stream, group) pair of the pipeline, so a stage or `eva00 status` can list backlogs.
PIPELINE_GROUPS: tuple[tuple[str, str], ...] = (
    (STREAM_SYNC_PRIORITY, GROUP_FETCHERS),
    (STREAM_SYNC_SCHEDULED, GROUP_FETCHERS),
    (STREAM_PAGES, GROUP_DIFFERS),
    *((stream, GROUP_DOWNLOADERS) for stream in STREAM_FILES_BY_PRIORITY),
    (STREAM_THUMBNAILS, GROUP_THUMBNAILERS),
    (STREAM_TEXT, GROUP_TEXT),
    (STREAM_INGEST, GROUP_INGEST),
)
# Streams a stage of ours reads and trims; any other stream we feed is outbound (ingest) and is
# capped by the stages that feed it.
CONSUMED_STREAMS: frozenset[str] = frozenset(s for s, _g in PIPELINE_GROUPS if s != STREAM_INGEST)

# --- plain keys ---
# A scheduled poll job for (kind, project) still pending: SET NX with a TTL so it is not doubled.
JOB_PENDING_PREFIX = f"{PREFIX}:job:pending"
# (The Procore client's keys, OAuth token, limiter, pause and metrics, are in procore/keys.py
# under this PREFIX, so tests and benchmarks can give a limiter a prefix of its own.)
# Webhook debounce: one key per resource while a re-fetch is already queued.
WEBHOOK_DEBOUNCE_PREFIX = f"{PREFIX}:webhook:debounce"
# Webhook flood cap: single-record jobs queued by webhooks in one clock minute (INCR, short TTL).
WEBHOOK_JOBS_MINUTE_PREFIX = f"{PREFIX}:webhook:jobs"
# Download slots shared by every downloader process: a sorted set of holder -> lease expiry.
DOWNLOAD_SLOTS = f"{PREFIX}:files:slots"


def file_stream(priority: int) -> str:
    """The stream of a file job's priority; out-of-range priorities go to the nearest end."""
    return STREAM_FILES_BY_PRIORITY[min(max(priority, 1), len(STREAM_FILES_BY_PRIORITY)) - 1]


def job_pending_key(kind: str, project_id: int | None) -> str:
    return f"{JOB_PENDING_PREFIX}:{kind}:{project_id or 0}"


def webhook_jobs_minute_key(minute: int) -> str:
    """Counts the webhook ITEM jobs queued in this minute (epoch seconds // 60)."""
    return f"{WEBHOOK_JOBS_MINUTE_PREFIX}:{minute}"


def webhook_debounce_key(kind: str, project_id: int | None, item_id: int | None) -> str:
    """Exists while a webhook re-fetch of this record is queued and not started: the listener sets
    it with the job, the fetcher deletes it when it starts, so one later event queues one more."""
    return f"{WEBHOOK_DEBOUNCE_PREFIX}:{kind}:{project_id or 0}:{item_id or 0}"


# A kind's delete signal (procore/deleted.py) whose last listing was incomplete, per project: the
# next listing ignores its poll's updated_at window, since the failed window is behind the cursor
# by then. Expires after the reconcile interval, when the daily backstop has covered it anyway.
DELETED_SIGNAL_RETRY_PREFIX = f"{PREFIX}:deleted:retry"


def deleted_signal_retry_key(kind: str, project_id: int | None) -> str:
    return f"{DELETED_SIGNAL_RETRY_PREFIX}:{kind}:{project_id or 0}"
