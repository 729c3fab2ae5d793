"""The middleware each stage program runs around its handler, one list per stage, so the
supervisord programs, the local pipeline and the tests wire exactly the same duties.

Not a stage itself: it sits above the stage modules (the import contract lists them by name), so
the fetcher and the differ need not import the scheduler whose marker they release.
"""

from __future__ import annotations

import redis

from eva00.fullsync.ledger import RunLedger
from eva00.runtime.middleware import Middleware
from eva00.stages.fetcher import Fetcher
from eva00.stages.scheduler import PendingMarkers
from eva00.webhooks.debounce import DebounceRelease


def fetcher_middleware(client: redis.Redis, fetcher: Fetcher) -> list[Middleware]:
    """The debounce key goes before anything else runs (before the first request); the ledger
    claims a run's job before the fetcher fetches it and again when it records it; the marker is
    released after COMMIT."""
    return [DebounceRelease(client), RunLedger(lambda: fetcher.job_stats), PendingMarkers(client)]


def differ_middleware(client: redis.Redis) -> list[Middleware]:
    return [PendingMarkers(client)]
