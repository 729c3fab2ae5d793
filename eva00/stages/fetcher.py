"""The fetcher stage: turns poll jobs into fetched pages, one page of Procore per job.

Delivery guarantee: at least once, and a crash re-fetches at most the page in flight. A job is
one page: the fetcher fetches it with no PostgreSQL transaction open (what it must read first, a
cursor or the stored list hashes, it reads in short read-only transactions closed before the next
request or limiter wait), records what the job produced in one short transaction (the full-sync
ledger, a refusal, an alert), then in one Redis MULTI emits the page to the differ, enqueues
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
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import psycopg
import redis

from eva00 import keys
from eva00.config import Settings
from eva00.fullsync import ledger
from eva00.hashing import payload_hash
from eva00.kinds import COMPANY_LEVEL_KINDS, KIND_TABLE, require_known_kind
from eva00.messages import MAX_RERUNS, Message, PageMessage, PollJob, PollMode
from eva00.procore import deleted as deleted_listing
from eva00.procore.endpoints import EndpointSpec, Scope, endpoint_for
from eva00.procore.errors import (
    TOOL_REFUSAL_STATUSES,
    ProcoreRequestFailed,
    ProcoreUnavailable,
    UnexpectedShape,
    refusal_reason,
)
from eva00.procore.http import ProcoreClient
from eva00.procore.paging import Page, Window, every_id, page_params, parse_page
from eva00.procore.shapes import show_record
from eva00.replica import cursors, polls, synclog, unavailable
from eva00.runtime import alerts
from eva00.runtime.bus import Delivery, Outgoing
from eva00.runtime.stage import Reads

log = logging.getLogger(__name__)

CLOCK_OFFSET_KEY = f"{keys.PREFIX}:clock:offset-s"  # server time minus local time, last seen
RECENT_DAYS = 7  # daily logs: the rolling window of an ordinary poll
BACKFILL_DAYS_DEFAULT = 365  # daily logs: how far back a sweep goes without a project start date
MAX_DATE_WINDOW_DAYS = 31
MAX_PARENT_WAITS = 3  # per-area drawing polls wait this many times for the areas to be stored
OUTAGE_PATIENCE_S = 600.0  # how long one job waits out an unavailable Procore before giving up
PROJECT_SEEN_S = 300.0  # a project's show answer tells a refused tool from a refused project this long
TOOL_PROBE_CLAIM_S = 60  # one fetcher asks for a pair of unknown or due tool state; its claim's life
TOOL_PROBE_WAIT_S = 30.0  # how long its peers wait for that answer before asking themselves
TOOL_PROBE_POLL_S = 0.2
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


@dataclass
class Fetched:
    """What one job fetched, for the short transaction that records it."""

    outgoing: list[Outgoing] = field(default_factory=list)
    refused: ProcoreRequestFailed | None = None  # the job ends as a refusal (nothing forwarded)
    forbidden_projects: list[int] = field(default_factory=list)  # stored projects answering 403
    tool_off: bool = False  # the refusal is the project's tool switched off (the project answers)
    tool_answered: bool = False  # an unknown or rechecked pair answered: its tool is available
    unreadable: UnexpectedShape | None = None  # an answer in a shape the client cannot read


class Fetcher:
    """A FetchThenRecord handler (runtime/stage.py): ``fetch`` calls Procore with no transaction
    open, ``record`` writes the job's result in its transaction."""

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
        self._projects_seen: dict[int, tuple[bool, float]] = {}  # project -> (answers, until)
        self._forbidden: list[int] = []  # stored projects the job in hand found refused (403)

    def fetch(self, message: Message, delivery: Delivery, reads: Reads) -> Fetched:
        job = cast(PollJob, message)  # the Stage passes only the types in ``accepts``
        require_known_kind(job.kind)
        return self.handle(reads, job, delivery.stream)

    def record(self, conn: psycopg.Connection, message: Message, delivery: Delivery,
               fetched: Fetched) -> Sequence[Outgoing]:
        job = cast(PollJob, message)
        if fetched.refused is not None:
            return self._refused(conn, job, fetched.refused, tool_off=fetched.tool_off)
        if fetched.unreadable is not None:
            return self._unreadable(conn, job, fetched.unreadable)
        if fetched.tool_answered:
            unavailable.mark_available(conn, job.kind, cast(int, job.project_id), self.clock())
        for project_id in fetched.forbidden_projects:
            self._alert_forbidden(conn, project_id)
        return fetched.outgoing

    @property
    def job_stats(self) -> ledger.JobStats:
        """What the job in hand spent (the full-sync ledger keeps it with the job)."""
        return self._stats

    def handle(self, reads: Reads, job: PollJob, stream: str) -> Fetched:
        self._stats = ledger.JobStats()
        spec = endpoint_for(job.kind)
        deadline = time.monotonic() + OUTAGE_PATIENCE_S
        gate = self._tool_gate(reads, job)
        if gate is not None and gate.reason is not None:
            self._stats.unavailable = gate.reason  # refused earlier: not asked until its recheck
            return Fetched()
        while True:
            self._forbidden = []
            try:
                outgoing = self._dispatch(reads, spec, job, stream)
                answered = gate is not None and gate.record and self._stats.requests > 0
                return Fetched(outgoing, forbidden_projects=self._forbidden, tool_answered=answered)
            except ProcoreRequestFailed as exc:
                return Fetched(refused=exc, tool_off=self._is_tool_off(reads, job, exc))
            except UnexpectedShape as exc:
                return Fetched(unreadable=exc)
            except ProcoreUnavailable as exc:
                # Waiting here keeps the job's delivery count for real failures, not outages.
                if time.monotonic() + exc.delay_s > deadline or self.stop_requested():
                    raise
                log.info("%s: Procore unavailable (%s); waiting %.1f s", job.kind, exc, exc.delay_s)
                self.sleep(max(exc.delay_s, 0.05))

    def _dispatch(self, reads: Reads, spec: EndpointSpec, job: PollJob,
                  stream: str) -> list[Outgoing]:
        if job.mode == PollMode.ITEM:
            if job.item_id is not None and spec.show_adds_content:
                return self._fetch_item(spec, job)
            # A list record's shape is what the replica keeps: re-poll the recent window instead.
            job = replace(job, mode=PollMode.INCREMENTAL, item_id=None)
        if spec.scope is Scope.PARENT and job.parent_id is None:
            return self._fan_out_parents(reads, spec, job, stream)
        if spec.date_window and job.window_from is None:
            return self._plan_date_windows(reads, job, stream)
        if job.poll_id == "":
            job = self._start_poll(reads, spec, job)
        return self._fetch_page(reads, spec, job, stream)

    # --- planning a poll ---

    def _start_poll(self, reads: Reads, spec: EndpointSpec, job: PollJob) -> PollJob:
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
            with reads() as conn:
                cursor = cursors.read_cursor(conn, job.kind, job.project_id)
            if cursor is not None:
                window_from = iso(cursor - timedelta(seconds=self.settings.poll_lookback_s))
            else:
                window_from = "2000-01-01T00:00:00Z"
        return replace(job, mode=mode, poll_id=self._poll_id(job, window_from, job.rerun), page=1,
                       window_from=window_from,
                       window_to=window_to, cursor_to=window_to, items_seen=0, expected_total=None)

    def _plan_date_windows(self, reads: Reads, job: PollJob, stream: str) -> list[Outgoing]:
        """Daily logs have no updated_at filter: recent days each poll, the whole history once."""
        today = self.server_now().date()
        with reads() as conn:
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

    def _fan_out_parents(self, reads: Reads, spec: EndpointSpec, job: PollJob,
                         stream: str) -> list[Outgoing]:
        """Drawings are listed per drawing area: one job per stored area, no API call. Parents
        that are no kind of ours (spec divisions) are listed from the API instead."""
        if spec.parent_listing is not None:
            return [(stream, replace(job, parent_id=parent)) for parent in self._listed_parents(spec, job)]
        parent_kind = spec.parent_kind or ""
        parent_table = KIND_TABLE[parent_kind]
        with reads() as conn:
            rows = conn.execute(
                f"SELECT procore_id FROM {parent_table} WHERE kind = %s AND project_id = %s"
                " AND NOT is_deleted ORDER BY procore_id", (parent_kind, job.project_id)).fetchall()
            parents_listed = polls.has_finished_poll(conn, parent_kind, job.project_id)
        if rows:
            return [(stream, replace(job, parent_id=int(row[0]))) for row in rows]
        if parents_listed or job.rerun >= MAX_PARENT_WAITS:
            return []  # the project has no areas (or they never came): nothing to list
        # The areas' own poll is probably still with the differ: look again after other work.
        return [(stream, replace(job, rerun=job.rerun + 1))]

    # --- fetching ---

    def _fetch_page(self, reads: Reads, spec: EndpointSpec, job: PollJob,
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
        items, deleted, list_hashes = self._split(reads, spec, job, page.items)
        # A full listing (FULL or RECONCILE, or one date window of daily logs) also finds
        # deletions: it sends every id it saw.
        date_window = spec.date_window and window is not None
        complete_listing = job.mode in (PollMode.RECONCILE, PollMode.FULL) or date_window
        ids = [int(i["id"]) for i in page.items] if complete_listing else []
        if job.kind == "project" and complete_listing and page.is_last and job.page == 1:
            ids += self._hidden_projects(reads, spec, job, set(ids))
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

    def _split(self, reads: Reads, spec: EndpointSpec, job: PollJob,
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
        with reads() as conn:
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

    def _hidden_projects(self, reads: Reads, spec: EndpointSpec, job: PollJob,
                         listed: set[int]) -> list[int]:
        """Stored projects missing from a complete project list: a project the service account lost
        permission on vanishes from the list exactly like a deleted one. Only a 404 from its own
        endpoint says deleted; anything else keeps it (and says why: an alert when recorded)."""

        with reads() as conn:
            stored = [int(r[0]) for r in conn.execute(
                "SELECT procore_id FROM projects WHERE kind = 'project' AND NOT is_deleted")]
        kept = []
        for project_id in sorted(set(stored) - listed):
            try:
                self._show(spec, job, project_id)
            except ProcoreRequestFailed as exc:
                if exc.status != 403:
                    raise
                self._forbidden.append(project_id)
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

    def _fetch_item(self, spec: EndpointSpec, job: PollJob) -> list[Outgoing]:
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

    # --- tools switched off per project ---

    def _tool_gate(self, reads: Reads, job: PollJob) -> unavailable.Gate | None:
        """Whether this job may ask Procore (eva00/replica/unavailable.py); None for the company's
        own lists, which no project's tool settings switch off. A pair never answered, or due for
        its recheck, is asked by one fetcher: the one whose claim (a Redis key, so no transaction
        is open across the request) is first; the others wait for its answer or keep the old one."""
        if job.project_id is None or job.kind in COMPANY_LEVEL_KINDS:
            return None
        spec = endpoint_for(job.kind)
        asks = not ((spec.scope is Scope.PARENT and job.parent_id is None) or (
            spec.date_window and job.window_from is None))  # a job that only plans others
        deadline = time.monotonic() + TOOL_PROBE_WAIT_S
        while True:
            with reads() as conn:
                seen = unavailable.peek(conn, job.kind, job.project_id, self.clock())
            if seen is not None and seen.status == unavailable.ToolState.AVAILABLE:
                return unavailable.Gate(None, record=False)
            if seen is not None and not seen.due:
                return unavailable.Gate(seen.reason, record=False)
            if not asks:
                return unavailable.Gate(None, record=False)  # the jobs it plans ask
            if self._claim_probe(job, "first" if seen is None else f"{seen.next_check_s:.0f}"):
                return unavailable.Gate(None, record=True)
            if seen is not None:
                return unavailable.Gate(seen.reason, record=False)  # a peer rechecks it now
            if time.monotonic() >= deadline:
                return unavailable.Gate(None, record=True)  # the peer's answer never came
            self.sleep(TOOL_PROBE_POLL_S)  # a peer asks first: its answer decides for this job

    def _claim_probe(self, job: PollJob, which: str) -> bool:
        """Claim the first ask, or the recheck due at one time, of the job's pair."""
        return bool(self.redis.set(keys.tool_probe_key(job.kind, cast(int, job.project_id), which), "1",
                                   nx=True, ex=TOOL_PROBE_CLAIM_S))

    def _is_tool_off(self, reads: Reads, job: PollJob, exc: ProcoreRequestFailed) -> bool:
        """A 403/404 for one kind in a project that itself answers is that project's tool switched
        off (recorded by ``record``); a refused project is not."""
        return (exc.status in TOOL_REFUSAL_STATUSES and job.project_id is not None
                and job.kind not in COMPANY_LEVEL_KINDS and self._project_answers(reads, job))

    def _record_tool_off(self, conn: psycopg.Connection, job: PollJob, exc: ProcoreRequestFailed) -> None:
        """The pair is unavailable until its recheck, and the job ends without error."""
        reason = refusal_reason(exc)
        unavailable.record_refusal(conn, job.kind, cast(int, job.project_id), reason, exc.status,
                                   self.clock(), self.settings.unavailable_recheck_s)
        synclog.log_sync(conn, job.kind, job.project_id, "tool_unavailable",
                         {"status": exc.status, "reason": reason, "poll_id": job.poll_id}, result="skipped")
        log.info("%s in project %s: %s; asked again in %.0f s", job.kind, job.project_id, reason,
                 self.settings.unavailable_recheck_s)
        self._stats.unavailable = reason

    def _project_answers(self, reads: Reads, job: PollJob) -> bool:
        """Does the project itself answer (its show)? Told apart from a project refused as a whole;
        remembered a little while (here, and by the table for every fetcher), so a project's
        refused kinds cost one look, not one each."""
        known = self._projects_seen.get(cast(int, job.project_id))
        if known is not None and known[1] > time.monotonic():
            return known[0]
        with reads() as conn:
            if unavailable.project_answered_since(conn, cast(int, job.project_id),
                                                  self.clock() - PROJECT_SEEN_S):
                return True
        spec = endpoint_for("project")
        path, query = spec.show_request(cast(int, job.project_id), company_id=self.settings.company_id,
                                        project_id=job.project_id, parent_id=None)
        self._stats.requests += 1
        try:
            self.client.get_json(path, budget=job.budget, params=query, endpoint="project:show",
                                 deadline_s=CALL_WAIT_S)
            answers = True
        except ProcoreRequestFailed:
            answers = False
        self._projects_seen[cast(int, job.project_id)] = (answers, time.monotonic() + PROJECT_SEEN_S)
        return answers

    def _refused(self, conn: psycopg.Connection, job: PollJob, exc: ProcoreRequestFailed, *,
                 tool_off: bool = False) -> list[Outgoing]:
        """403/404 on a project or list: nothing is deleted, the project is reported, the job ends.
        A tool switched off in the project is not an error: the pair waits for its recheck."""

        spec = endpoint_for(job.kind)
        if exc.status == 404 and job.parent_id is not None and spec.parent_kind:
            # The parent (a drawing area) was deleted since it was listed: not a refusal. A
            # reconciliation of the parents establishes the delete, and its children follow it.
            synclog.log_sync(conn, job.kind, job.project_id, "parent_gone",
                             {"parent_kind": spec.parent_kind, "parent_id": job.parent_id})
            return [(keys.STREAM_SYNC_PRIORITY, PollJob(
                kind=spec.parent_kind, project_id=job.project_id, mode=PollMode.RECONCILE,
                budget=job.budget, reason=f"parent-gone:{job.kind}", requested_at=time.time()))]
        if tool_off:
            self._record_tool_off(conn, job, exc)
            return []
        self._stats.refused = f"{exc.status}: {str(exc)[:200]}"
        synclog.log_sync(conn, job.kind, job.project_id, "fetch_refused",
                         {"status": exc.status, "error": str(exc)[:300], "poll_id": job.poll_id},
                         result="failed")
        if exc.status == 403 and job.project_id is not None:
            self._alert_forbidden(conn, job.project_id)
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
    def _alert_forbidden(conn: psycopg.Connection, project_id: int) -> None:
        alerts.raise_alert(conn, f"project-forbidden:{project_id}", "warning",
                           f"Procore refuses project {project_id} (403): check the service"
                           " account's permissions; its records are kept as they are")

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
