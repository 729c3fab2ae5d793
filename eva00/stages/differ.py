"""The differ stage: turns fetched pages into replica rows, history, cursors and soft deletes.

Delivery guarantee: exactly one effect per page. Everything a page changes (records, versions,
sync_log, the page's checkpoint and, on the poll's last committed page, the cursor or the delete
reconciliation) commits in one PostgreSQL transaction; downstream messages (file jobs, ingest
events) are decided from what is committed, so a page redelivered after COMMIT forwards them again
(consumers are idempotent) instead of losing them. A cursor moves only when every page of its
poll has committed and the enumeration was complete; it becomes the window end the fetcher chose
from the server's clock, never the local time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg import sql

from eva00 import keys
from eva00.errors import Poison, Skip
from eva00.hashing import payload_hash
from eva00.kinds import KIND_TABLE, file_refs, require_known_kind
from eva00.messages import FileJob, IngestEvent, Message, PageMessage, PollMode
from eva00.pdf_import.merge import adopt_imported
from eva00.replica import cursors, deletes, files, plans, polls, synclog
from eva00.replica.records import FetchedRecord, Outcome, upsert_records
from eva00.runtime import alerts
from eva00.runtime.bus import Delivery, Outgoing

log = logging.getLogger(__name__)

CHANGED = {Outcome.INSERTED, Outcome.UPDATED, Outcome.RESTORED, Outcome.CONFLICT_OVERWRITTEN}
# Kinds a PDF log import may have created before the API knew them.
IMPORTABLE_KINDS = {"rfi", "submittal"}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Differ:
    accepts: tuple[type[Message], ...] = (PageMessage,)

    def __init__(self, mass_delete_ratio: float) -> None:
        self.mass_delete_ratio = mass_delete_ratio

    def __call__(self, conn: psycopg.Connection, message: Message,
                 delivery: Delivery) -> Sequence[Outgoing]:
        page = cast(PageMessage, message)  # the Stage passes only the types in ``accepts``
        require_known_kind(page.kind)
        return self.handle(conn, page)

    def handle(self, conn: psycopg.Connection, page: PageMessage) -> list[Outgoing]:
        fetched_at = parse_time(page.fetched_at)
        first_time = polls.record_page(
            conn, page.poll_id, page.page, kind=page.kind, project_id=page.project_id, mode=page.mode,
            is_last=page.is_last, pages_total=page.pages_total, complete=page.complete,
            window_to=page.window_to, run_id=page.run_id, items=len(page.items) or len(page.ids))
        records = [self._record(page, item, fetched_at) for item in page.items]
        if page.kind in IMPORTABLE_KINDS:
            self._adopt_imports(conn, page.kind, records)
        outcomes = upsert_records(conn, records) if records else []
        if page.list_hashes:
            polls.remember_list_hashes(conn, page.kind, page.project_id, page.list_hashes)
        if page.deleted_ids:
            self._signalled(conn, page, fetched_at)
        for procore_id in page.missing_ids:
            self._confirm_missing(conn, page, procore_id, fetched_at)
        if page.missing_ids:
            deletes.soft_delete_orphans(conn, page.kind, page.project_id, fetched_at)
        if (page.mode in (PollMode.RECONCILE, PollMode.FULL) or page.date_from) and page.ids:
            polls.remember_seen(conn, page.poll_id, page.ids)
        if first_time:  # what the scheduler's plan learns of this pair's activity (replica/plans.py)
            plans.count_changes(conn, page.poll_id, page.page, sum(o in CHANGED for o in outcomes)
                                + len(page.deleted_ids) + len(page.missing_ids))
        self._finish_poll_if_complete(conn, page, fetched_at)
        changed = [r for r, o in zip(records, outcomes, strict=True) if o in CHANGED or not first_time]
        return self._ingest_events(changed) + self._file_jobs(conn, changed)

    # --- records ---

    @staticmethod
    def _record(page: PageMessage, item: dict[str, Any], fetched_at: datetime) -> FetchedRecord:
        try:
            procore_id = int(item["id"])
        except (KeyError, TypeError, ValueError):
            raise Poison(f"{page.kind} record without a usable id on page {page.page}") from None
        project_id = None if page.kind == "project" else page.project_id
        return FetchedRecord(kind=page.kind, procore_id=procore_id, project_id=project_id,
                             payload=item, fetched_at=fetched_at,
                             source="webhook" if page.budget == "webhook" else "api")

    @staticmethod
    def _adopt_imports(conn: psycopg.Connection, kind: str,
                       records: Sequence[FetchedRecord]) -> None:
        """Let API records take over rows a PDF log import created (matched by project and number).
        One query finds the page's candidates, so pages without imports cost nothing more."""
        numbered = [(r.project_id, str(r.payload["number"]), r.procore_id) for r in records
                    if r.payload.get("number") and r.project_id is not None]
        if not numbered:
            return
        query = sql.SQL("SELECT DISTINCT project_id, number FROM {} WHERE source = 'pdf_import'"
                        " AND NOT is_deleted AND project_id = ANY(%s) AND number = ANY(%s)").format(
            sql.Identifier(KIND_TABLE[kind]))
        imported = set(conn.execute(query, (list({p for p, _n, _i in numbered}),
                                            list({n for _p, n, _i in numbered}))).fetchall())
        for project_id, number, procore_id in numbered:
            if (project_id, number) in imported:
                adopt_imported(conn, kind, project_id, number, procore_id)

    def _signalled(self, conn: psycopg.Connection, page: PageMessage, at: datetime) -> None:
        """Records a delete signal named (recycle bin, inactive list, a deletion field), guarded."""
        result = deletes.soft_delete_signalled(conn, page.kind, page.project_id, page.deleted_ids,
                                               max_ratio=self.mass_delete_ratio, at=at)
        deletes.soft_delete_orphans(conn, page.kind, page.project_id, at)
        if result.guard_tripped:
            alerts.raise_alert(conn, f"mass-delete:{page.kind}:{page.project_id or 0}", "critical",
                               f"the delete signal of {page.kind} in project {page.project_id} names"
                               f" {result.would_delete} of {result.live} records deleted; {result.held}"
                               " are held as delete_pending until a second signal confirms them",
                               {"poll_id": page.poll_id})

    def _confirm_missing(self, conn: psycopg.Connection, page: PageMessage, procore_id: int,
                         at: datetime) -> None:
        """An item fetch answered 404: confirmed deleted only if a delete was pending for it."""
        query = sql.SQL("SELECT delete_pending FROM {} WHERE kind = %s AND procore_id = %s"
                        " AND coalesce(project_id, 0) = coalesce(%s, 0)").format(
            sql.Identifier(KIND_TABLE[page.kind]))
        row = conn.execute(query, (page.kind, procore_id, page.project_id)).fetchone()
        if row and row[0]:
            deletes.mark_deleted(conn, page.kind, page.project_id, procore_id, at)

    # --- poll bookkeeping ---

    def _finish_poll_if_complete(self, conn: psycopg.Connection, page: PageMessage,
                                 at: datetime) -> None:
        finished = polls.finish_if_complete(conn, page.poll_id)
        if finished is None:
            return  # pages still missing, or an earlier delivery finished the poll
        if not finished.complete:
            synclog.log_sync(conn, page.kind, page.project_id, "poll_incomplete",
                             {"poll_id": page.poll_id, "pages": finished.pages_total})
            return
        if page.mode in (PollMode.INCREMENTAL, PollMode.FULL) and finished.window_to is not None:
            cursors.advance_cursor(conn, page.kind, page.project_id, finished.window_to)
        if page.mode in (PollMode.RECONCILE, PollMode.FULL) or page.date_from:
            # A full listing is complete by construction: what it did not list is gone upstream.
            self._reconcile(conn, page, at)

    def _reconcile(self, conn: psycopg.Connection, page: PageMessage, at: datetime) -> None:
        seen = polls.seen_ids(conn, page.poll_id)
        dates = (page.date_from, page.date_to or page.date_from) if page.date_from else None
        result = deletes.soft_delete_missing(conn, page.kind, page.project_id, seen,
                                             max_ratio=self.mass_delete_ratio, at=at, date_range=dates,
                                             parent_id=page.parent_id)
        deletes.soft_delete_orphans(conn, page.kind, page.project_id, at)
        if result.guard_tripped:
            alerts.raise_alert(conn, f"mass-delete:{page.kind}:{page.project_id or 0}", "critical",
                               f"delete reconciliation of {page.kind} in project {page.project_id}"
                               f" would soft-delete {result.would_delete} of {result.live} records;"
                               f" {result.held} are held as delete_pending until the next complete"
                               " listing confirms them", {"poll_id": page.poll_id})

    # --- downstream ---

    @staticmethod
    def _ingest_events(records: Sequence[FetchedRecord]) -> list[Outgoing]:
        return [(keys.STREAM_INGEST, IngestEvent(what="record", kind=r.kind, procore_id=r.procore_id,
                                                 project_id=r.project_id,
                                                 payload_hash=payload_hash(r.payload)))
                for r in records]

    @staticmethod
    def _file_jobs(conn: psycopg.Connection, records: Sequence[FetchedRecord]) -> list[Outgoing]:
        jobs: list[Outgoing] = []
        for record in records:
            for ref in file_refs(record.kind, record.payload):
                if files.link_fetched(conn, record.kind, record.procore_id, record.project_id, ref):
                    jobs.append((keys.file_stream(ref.priority), FileJob(
                        kind=record.kind, procore_id=record.procore_id, project_id=record.project_id,
                        url_field=ref.url_field, url=ref.url, procore_file_id=ref.file_id,
                        procore_version_id=ref.version_id, expected_size_bytes=ref.size_bytes,
                        priority=ref.priority)))
        return jobs


__all__ = ["Differ", "Skip"]
