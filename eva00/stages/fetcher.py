"""The fetcher stage: turns poll jobs into fetched pages, one page of Procore per job.

Delivery guarantee: at least once, and a crash re-fetches at most the page in flight. A job is
one page: the fetcher fetches it, then in one Redis MULTI emits the page to the differ, enqueues
the job for the next page (same poll id and window) and acknowledges its own job. Windows come
from the server's clock: the upper bound is fixed before page 1, and the cursor target is the
smaller of it and page 1's Date minus the safety margin, so a host clock running ahead can never
push the cursor past what the server had. A poll whose pages disagree with Total is re-run
before anything may move its cursor or delete anything. Show endpoints are called only for
records whose list entry changed since the last fetch, and only where the show adds content.
What rides along with a job is middleware of this stage (stages/middleware.py): the webhook
debounce key cleared before an item fetch, the full-sync ledger around a run's job, the
scheduler's pending marker released when a poll ends.
"""

from __future__ import annotations

import email.utils
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import psycopg
import redis

from eva00 import keys
from eva00.config import Settings
from eva00.fullsync import ledger
from eva00.hashing import payload_hash
from eva00.kinds import KIND_TABLE, require_known_kind
from eva00.messages import MAX_RERUNS, Message, PageMessage, PollJob, PollMode
from eva00.procore import deleted as deleted_listing
from eva00.procore.endpoints import EndpointSpec, Scope, endpoint_for
from eva00.procore.errors import ProcoreRequestFailed, ProcoreUnavailable, UnexpectedShape
from eva00.procore.http import ProcoreClient
from eva00.procore.paging import Page, Window, every_id, page_params, parse_page
from eva00.procore.shapes import show_record
from eva00.replica import cursors, polls, synclog
from eva00.runtime import alerts
from eva00.runtime.bus import Delivery, Outgoing

log = logging.getLogger(__name__)

CLOCK_OFFSET_KEY = f"{keys.PREFIX}:clock:offset-s"  # server time minus local time, last seen
RECENT_DAYS = 7  # daily logs: the rolling window of an ordinary poll
BACKFILL_DAYS_DEFAULT = 365  # daily logs: how far back a sweep goes without a project start date
MAX_DATE_WINDOW_DAYS = 31
MAX_PARENT_WAITS = 3  # per-area drawing polls wait this many times for the areas to be stored
OUTAGE_PATIENCE_S = 600.0  # how long one job waits out an unavailable Procore before giving up
# One call waits at most this long for the limiter or a pause, so SIGTERM is noticed within it.
CALL_WAIT_S = 10.0


class _NotFound(Exception):
    """A show answered 404: the record is gone upstream."""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


class Fetcher:
    accepts: tuple[type[Message], ...] = (PollJob,)

    def __init__(self, settings: Settings, client: ProcoreClient, redis_client: redis.Redis, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 stop_requested: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self.client = client
        self.redis = redis_client
        self.clock, self.sleep = clock, sleep
        # While Procore is away a job waits here; a stopping process leaves it to a peer instead.
        self.stop_requested = stop_requested
        self._stats = ledger.JobStats()  # what the job in hand spent (full-sync runs keep it)

    def __call__(self, conn: psycopg.Connection, message: Message,
                 delivery: Delivery) -> Sequence[Outgoing]:
        job = cast(PollJob, message)  # the Stage passes only the types in ``accepts``
        require_known_kind(job.kind)
        return self.handle(conn, job, delivery.stream)

    @property
    def job_stats(self) -> ledger.JobStats:
        """What the job in hand spent (the full-sync ledger keeps it with the job)."""
        return self._stats

    def handle(self, conn: psycopg.Connection, job: PollJob, stream: str) -> list[Outgoing]:
        self._stats = ledger.JobStats()
        spec = endpoint_for(job.kind)
        deadline = time.monotonic() + OUTAGE_PATIENCE_S
        while True:
            try:
                return self._dispatch(conn, spec, job, stream)
            except ProcoreRequestFailed as exc:
                return self._refused(conn, job, exc)
            except UnexpectedShape as exc:
                return self._unreadable(conn, job, exc)
            except ProcoreUnavailable as exc:
                # Waiting here keeps the job's delivery count for real failures, not outages.
                if time.monotonic() + exc.delay_s > deadline or self.stop_requested():
                    raise
                log.info("%s: Procore unavailable (%s); waiting %.1f s", job.kind, exc, exc.delay_s)
                self.sleep(max(exc.delay_s, 0.05))

    def _dispatch(self, conn: psycopg.Connection, spec: EndpointSpec, job: PollJob,
                  stream: str) -> list[Outgoing]:
        if job.mode == PollMode.ITEM:
            if job.item_id is not None and spec.show_adds_content:
                return self._fetch_item(conn, spec, job)
            # A list record's shape is what the replica keeps: re-poll the recent window instead.
            job = replace(job, mode=PollMode.INCREMENTAL, item_id=None)
        if spec.scope is Scope.PARENT and job.parent_id is None:
            return self._fan_out_parents(conn, spec, job, stream)
        if spec.date_window and job.window_from is None:
            return self._plan_date_windows(conn, job, stream)
        if job.poll_id == "":
            job = self._start_poll(conn, spec, job)
        return self._fetch_page(conn, spec, job, stream)

    # --- planning a poll ---

    def _start_poll(self, conn: psycopg.Connection, spec: EndpointSpec, job: PollJob) -> PollJob:
        mode = job.mode
        if not spec.supports_updated_at and not spec.date_window:
            # Fetched whole every time: the listing is complete, so it also finds deletions (a
            # listing per parent, the drawings of one area, only those of that parent).
            mode = PollMode.RECONCILE
        window_from = window_to = None
        if mode == PollMode.FULL and spec.supports_updated_at:
            # Everything, without an updated_at window: a window would hide the records updated
            # while we page from the delete reconciliation. The cursor goes to page 1's server
            # time minus the margin, so everyday polling continues incrementally from there.
            margin = timedelta(seconds=self.settings.poll_safety_margin_s)
            return replace(job, poll_id=self._poll_id(job, None, job.rerun), page=1, window_from=None,
                           window_to=None, cursor_to=iso(self.server_now() - margin), items_seen=0,
                           expected_total=None)
        if mode == PollMode.INCREMENTAL and spec.supports_updated_at:
            server_now = self.server_now()
            window_to = iso(server_now - timedelta(seconds=self.settings.poll_safety_margin_s))
            cursor = cursors.read_cursor(conn, job.kind, job.project_id)
            if cursor is not None:
                window_from = iso(cursor - timedelta(seconds=self.settings.poll_lookback_s))
            else:
                window_from = "2000-01-01T00:00:00Z"
        return replace(job, mode=mode, poll_id=self._poll_id(job, window_from, job.rerun), page=1,
                       window_from=window_from,
                       window_to=window_to, cursor_to=window_to, items_seen=0, expected_total=None)

    def _plan_date_windows(self, conn: psycopg.Connection, job: PollJob, stream: str) -> list[Outgoing]:
        """Daily logs have no updated_at filter: recent days each poll, the whole history once."""
        today = self.server_now().date()
        sweep = job.mode in (PollMode.FULL, PollMode.RECONCILE) or cursors.read_cursor(
            conn, job.kind, job.project_id) is None
        first = self._project_start(conn, job.project_id, today) if sweep else today - timedelta(
            days=RECENT_DAYS - 1)
        jobs: list[Outgoing] = []
        start = first
        while start <= today:
            end = min(start + timedelta(days=MAX_DATE_WINDOW_DAYS - 1), today)
            jobs.append((stream, replace(job, mode=PollMode.INCREMENTAL,
                                         poll_id=self._poll_id(job, start.isoformat(), 0),
                                         page=1, window_from=start.isoformat(),
                                         window_to=end.isoformat(),
                                         cursor_to=f"{end.isoformat()}T00:00:00Z")))
            start = end + timedelta(days=1)
        return jobs

    def _project_start(self, conn: psycopg.Connection, project_id: int | None, today: date) -> date:
        row = conn.execute("SELECT payload->>'start_date', payload->>'created_at' FROM projects"
                           " WHERE kind = 'project' AND procore_id = %s", (project_id,)).fetchone()
        for value in row or ():
            if value:
                try:
                    return min(date.fromisoformat(str(value)[:10]), today)
                except ValueError:
                    continue
        return today - timedelta(days=BACKFILL_DAYS_DEFAULT)

    def _fan_out_parents(self, conn: psycopg.Connection, spec: EndpointSpec, job: PollJob,
                         stream: str) -> list[Outgoing]:
        """Drawings are listed per drawing area: one job per stored area, no API call. Parents
        that are no kind of ours (spec divisions) are listed from the API instead."""
        if spec.parent_listing is not None:
            return [(stream, replace(job, parent_id=parent)) for parent in self._listed_parents(spec, job)]
        parent_kind = spec.parent_kind or ""
        parent_table = KIND_TABLE[parent_kind]
        rows = conn.execute(
            f"SELECT procore_id FROM {parent_table} WHERE kind = %s AND project_id = %s"
            " AND NOT is_deleted ORDER BY procore_id", (parent_kind, job.project_id)).fetchall()
        if rows:
            return [(stream, replace(job, parent_id=int(row[0]))) for row in rows]
        if polls.has_finished_poll(conn, parent_kind, job.project_id) or job.rerun >= MAX_PARENT_WAITS:
            return []  # the project has no areas (or they never came): nothing to list
        # The areas' own poll is probably still with the differ: look again after other work.
        return [(stream, replace(job, rerun=job.rerun + 1))]

    # --- fetching ---

    def _fetch_page(self, conn: psycopg.Connection, spec: EndpointSpec, job: PollJob,
                    stream: str) -> list[Outgoing]:
        path, fixed = spec.list_request(company_id=self.settings.company_id, project_id=job.project_id,
                                        parent_id=job.parent_id)
        window = Window(job.window_from, job.window_to) if job.window_from and job.window_to else None
        params = page_params(spec, fixed, page=job.page, window=window)
        per_page = int(params.get("per_page", spec.max_per_page))
        self._stats.requests += 1
        body, response = self.client.get_json(path, budget=job.budget, params=params,
                                              endpoint=f"{spec.kind}:list", deadline_s=CALL_WAIT_S)
        page = parse_page(spec, body, response.headers, page=job.page, per_page=per_page,
                          seen_before=job.items_seen)
        fetched_at = self._observe_server_time(page.server_date)
        self._stats.listed, self._stats.total = len(page.items), page.total
        if job.page == 1:
            job = self._after_first_page(job, page, fetched_at)
        totals_agree = job.totals_agree and (page.total is None or page.total == job.expected_total)
        seen = job.items_seen + len(page.items)
        items, deleted, list_hashes = self._split(conn, spec, job, page.items)
        # A full listing (FULL or RECONCILE, or one date window of daily logs) also finds
        # deletions: it sends every id it saw.
        date_window = spec.date_window and window is not None
        complete_listing = job.mode in (PollMode.RECONCILE, PollMode.FULL) or date_window
        ids = [int(i["id"]) for i in page.items] if complete_listing else []
        if job.kind == "project" and complete_listing and page.is_last and job.page == 1:
            ids += self._hidden_projects(conn, spec, job, set(ids))
        complete = page.is_last and totals_agree and job.expected_total in (None, seen)
        if complete:
            deleted = deleted + self._signalled_deletes(spec, job, window)
        message = PageMessage(
            poll_id=job.poll_id, kind=job.kind, project_id=job.project_id, mode=job.mode, page=job.page,
            fetched_at=iso(fetched_at), budget=job.budget, items=items, ids=ids,
            deleted_ids=deleted, list_hashes=list_hashes, is_last=page.is_last,
            pages_total=job.page if page.is_last else None, window_to=job.cursor_to,
            parent_id=job.parent_id, run_id=job.run_id, requested_at=job.requested_at,
            pending_key=job.pending_key,
            date_from=job.window_from if date_window else None,
            date_to=job.window_to if date_window else None,
            complete=complete)
        out: list[Outgoing] = [(keys.STREAM_PAGES, message)]
        if not page.is_last:
            out.append((stream, replace(job, page=job.page + 1, items_seen=seen,
                                        totals_agree=totals_agree)))
        elif not message.complete:
            out += self._rerun(job, stream, seen)
        return out

    def _after_first_page(self, job: PollJob, page: Page, fetched_at: datetime) -> PollJob:
        cursor_to = job.cursor_to
        if cursor_to is not None and (job.mode == PollMode.FULL
                                      or (job.window_from and "T" in job.window_from)):
            margin = timedelta(seconds=self.settings.poll_safety_margin_s)
            cursor_to = iso(min(parse_iso(cursor_to), fetched_at - margin))
        return replace(job, expected_total=page.total, cursor_to=cursor_to)

    def _rerun(self, job: PollJob, stream: str, seen: int) -> list[Outgoing]:
        log.warning("%s project %s: pages held %d records, Total said %s; re-running the window",
                    job.kind, job.project_id, seen, job.expected_total)
        if job.rerun >= MAX_RERUNS:
            return []
        return [(stream, replace(job, poll_id=self._poll_id(job, job.window_from, job.rerun + 1),
                                 page=1, items_seen=0,
                                 expected_total=None, totals_agree=True, rerun=job.rerun + 1))]

    def _split(self, conn: psycopg.Connection, spec: EndpointSpec, job: PollJob,
               listed: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int], dict[str, str]]:
        """(records to store, ids deleted upstream, list hashes). Show-backed kinds send only the
        records whose list entry changed, each replaced by its show answer."""
        deleted_field = spec.deleted.record_field
        live = []
        deleted = []
        for item in listed:
            marker = item.get(deleted_field) if deleted_field else None
            if marker not in (None, False, ""):
                deleted.append(int(item["id"]))
            else:
                live.append(item)
        if not spec.show_adds_content:
            return live, deleted, {}
        hashes = {str(item["id"]): payload_hash(item) for item in live}
        stored = polls.stored_list_hashes(conn, job.kind, job.project_id, [int(i) for i in hashes])
        items = []
        changed_hashes = {}
        for item in live:
            key = str(item["id"])
            if stored.get(key) == hashes[key]:
                continue
            self._stats.shows_needed += 1
            shown = self._show(spec, job, int(item["id"]))
            if shown is not None:
                items.append(shown)
                changed_hashes[key] = hashes[key]
        return items, deleted, changed_hashes

    def _signalled_deletes(self, spec: EndpointSpec, job: PollJob, window: Window | None) -> list[int]:
        """After a poll's last page: the ids its kind's delete signal names (procore/deleted.py);
        none when the kind has no signal or its listing was incomplete. After an incomplete one
        the next listing is not windowed, so the failed window's deletes still arrive."""
        if job.run_id or not deleted_listing.asked_on(spec, job.mode):
            return []  # a full-sync run's listings are complete: absence finds its deletes
        retry_key = keys.deleted_signal_retry_key(job.kind, job.project_id)
        listing = deleted_listing.list_deleted(
            self.client, spec, company_id=self.settings.company_id, project_id=job.project_id,
            window=None if self.redis.exists(retry_key) else window, budget=job.budget,
            deadline_s=CALL_WAIT_S)
        self._stats.requests += listing.requests
        if listing.complete:
            self.redis.delete(retry_key)
            return listing.ids
        self.redis.set(retry_key, listing.reason, ex=max(1, int(self.settings.reconcile_interval_s)))
        return []

    def _listed_parents(self, spec: EndpointSpec, job: PollJob) -> list[int]:
        path, fixed = spec.parent_listing_request(company_id=self.settings.company_id,
                                                  project_id=job.project_id)

        def get(params: dict[str, str]) -> tuple[Any, Mapping[str, str]]:
            self._stats.requests += 1
            body, response = self.client.get_json(path, budget=job.budget, params=params,
                                                  endpoint=f"{spec.kind}:parents", deadline_s=CALL_WAIT_S)
            return body, response.headers
        return every_id(get, fixed, endpoint=f"GET {path}")

    def _hidden_projects(self, conn: psycopg.Connection, spec: EndpointSpec, job: PollJob,
                         listed: set[int]) -> list[int]:
        """Stored projects missing from a complete project list: a project the service account lost
        permission on vanishes from the list exactly like a deleted one. Only a 404 from its own
        endpoint says deleted; anything else keeps it (and says why)."""

        stored = [int(r[0]) for r in conn.execute(
            "SELECT procore_id FROM projects WHERE kind = 'project' AND NOT is_deleted")]
        kept = []
        for project_id in sorted(set(stored) - listed):
            try:
                self._show(spec, job, project_id)
            except ProcoreRequestFailed as exc:
                if exc.status != 403:
                    raise
                alerts.raise_alert(conn, f"project-forbidden:{project_id}", "warning",
                                   f"Procore refuses project {project_id} (403): check the service"
                                   " account's permissions; its records are kept as they are")
                kept.append(project_id)
                continue
            except _NotFound:
                continue
            kept.append(project_id)
        return kept

    def _show(self, spec: EndpointSpec, job: PollJob, item_id: int) -> dict[str, Any] | None:
        path, query = spec.show_request(item_id, company_id=self.settings.company_id,
                                        project_id=job.project_id, parent_id=job.parent_id)
        self._stats.requests += 1
        self._stats.shows += 1
        try:
            body, response = self.client.get_json(path, budget=job.budget, params=query,
                                                  endpoint=f"{spec.kind}:show", deadline_s=CALL_WAIT_S)
        except ProcoreRequestFailed as exc:
            if exc.status == 404:
                if job.kind == "project":
                    raise _NotFound(str(exc)) from None
                return None  # deleted between list and show: reconciliation will see it
            raise
        self._observe_server_time(response.headers.get("Date"))
        return show_record(body, endpoint=f"GET {spec.show_path}")

    def _fetch_item(self, conn: psycopg.Connection, spec: EndpointSpec, job: PollJob) -> list[Outgoing]:
        assert job.item_id is not None
        shown = self._show(spec, job, job.item_id)
        fetched_at = iso(self.server_now())
        message = PageMessage(
            poll_id=f"item-{uuid.uuid4().hex}", kind=job.kind, project_id=job.project_id,
            mode=PollMode.ITEM, page=1, fetched_at=fetched_at, budget=job.budget,
            items=[shown] if shown is not None else [],
            missing_ids=[] if shown is not None else [job.item_id], is_last=True, pages_total=1,
            complete=True, run_id=job.run_id, requested_at=job.requested_at)
        return [(keys.STREAM_PAGES, message)]

    def _refused(self, conn: psycopg.Connection, job: PollJob, exc: ProcoreRequestFailed) -> list[Outgoing]:
        """403/404 on a project or list: nothing is deleted, the project is reported, the job ends."""

        spec = endpoint_for(job.kind)
        if exc.status == 404 and job.parent_id is not None and spec.parent_kind:
            # The parent (a drawing area) was deleted since it was listed: not a refusal. A
            # reconciliation of the parents establishes the delete, and its children follow it.
            synclog.log_sync(conn, job.kind, job.project_id, "parent_gone",
                             {"parent_kind": spec.parent_kind, "parent_id": job.parent_id})
            return [(keys.STREAM_SYNC_PRIORITY, PollJob(
                kind=spec.parent_kind, project_id=job.project_id, mode=PollMode.RECONCILE,
                budget=job.budget, reason=f"parent-gone:{job.kind}", requested_at=time.time()))]
        self._stats.refused = f"{exc.status}: {str(exc)[:200]}"
        synclog.log_sync(conn, job.kind, job.project_id, "fetch_refused",
                         {"status": exc.status, "error": str(exc)[:300], "poll_id": job.poll_id},
                         result="failed")
        if exc.status == 403 and job.project_id is not None:
            alerts.raise_alert(conn, f"project-forbidden:{job.project_id}", "warning",
                               f"Procore refuses project {job.project_id} (403): check the service"
                               " account's permissions; its records are kept as they are")
        return []

    def _unreadable(self, conn: psycopg.Connection, job: PollJob, exc: UnexpectedShape) -> list[Outgoing]:
        """An answer we cannot read: recorded with its endpoint and a sample, the (project, kind)
        fails for the run (the ledger settles its other jobs at once), nothing is deleted."""
        self._stats.refused = str(exc)[:300]
        synclog.log_sync(conn, job.kind, job.project_id, "unreadable_answer",
                         {"endpoint": exc.endpoint, "sample": exc.sample, "poll_id": job.poll_id},
                         result="failed")
        alerts.raise_alert(conn, f"unreadable:{job.kind}", "warning",
                           f"Procore answered {exc.endpoint} in a shape the sync cannot read; {job.kind}"
                           " is not synced until the client reads it", {"sample": exc.sample})
        return []

    @staticmethod
    def _poll_id(job: PollJob, window_from: str | None, rerun: int) -> str:
        # A full-sync run's polls are named by what they list, so handling a job twice starts
        # the same poll; everyday polls stay random.
        if job.run_id:
            return ledger.poll_id_for(job, window_from, rerun)
        return uuid.uuid4().hex

    # --- the server's clock ---

    def server_now(self) -> datetime:
        raw = self.redis.get(CLOCK_OFFSET_KEY)
        offset = float(raw) if raw is not None else 0.0
        return datetime.fromtimestamp(self.clock() + offset, UTC)

    def _observe_server_time(self, date_header: str | None) -> datetime:
        server = http_date(date_header)
        if server is None:
            return self.server_now()
        self.redis.set(CLOCK_OFFSET_KEY, f"{server.timestamp() - self.clock():.3f}")
        return server


def fetcher_inputs(settings: Settings) -> list[tuple[str, str]]:
    """The (stream, group) pairs EVA00_FETCHER_STREAMS names, priority first."""
    return [keys.FETCHER_INPUTS[name] for name in settings.fetcher_streams]
