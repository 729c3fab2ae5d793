"""Writing parsed PDFs into the replica: one transaction per file, ``source = 'pdf_import'``.

A log's records become rows under synthetic negative ids (`ids.py`) through
``replica.records.upsert_records``, so history, sync_log and idempotence work as for API records: the
same file imported twice changes nothing the second time. The API wins: an item whose number a
live API row of the project already has is skipped, and an imported row the API superseded
(`merge.py`) is never brought back. A row's ``cover_sheet`` (from a cover-sheet import) is kept
when its log is imported again.

A cover sheet updates (or creates) its submittal's imported row with the sheet's fields and its
attachment links, or, when the API already has the submittal, only attaches the links to the
API row's id. Queued links get a pending ``record_files`` row; the caller adds their FileJobs to
the files stream after COMMIT (a crash in between leaves pending rows that the next import of
the sheet queues again). Refused, expired and unavailable links go to sync_log, redacted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from eva00.kinds import file_refs, table_for
from eva00.messages import FileJob
from eva00.pdf_import import ids, merge
from eva00.pdf_import.links import LinkStatus, LinkVerdict
from eva00.replica import files, synclog
from eva00.replica.records import FetchedRecord, upsert_records

SOURCE = "pdf_import"


@dataclass
class ImportSummary:
    file: str
    kind: str
    records: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # replica outcome -> count
    skipped_api: int = 0  # the API already has the item
    skipped_superseded: int = 0  # an earlier import of it was superseded by the API


def import_log(conn: psycopg.Connection[Any], parsed: Mapping[str, Any], project_id: int,
               now: datetime) -> ImportSummary:
    kind, name = parsed["kind"], parsed["file"]
    records: Sequence[dict[str, Any]] = parsed["records"]
    summary = ImportSummary(name, kind, len(records))
    with conn.transaction():
        taken = merge.api_numbers(conn, kind, project_id)
        synthetic = ids.assign_ids(kind, project_id, records)
        stored = _stored(conn, kind, project_id, synthetic)
        fetched = []
        for record, procore_id in zip(records, synthetic, strict=True):
            previous = stored.get(procore_id)
            if merge.matches(taken, record):
                summary.skipped_api += 1
            elif previous is not None and previous[0]:
                summary.skipped_superseded += 1
            else:
                payload = _payload(record, procore_id, name, previous[1] if previous else None)
                fetched.append(FetchedRecord(kind, procore_id, project_id, payload, now, SOURCE))
        for outcome in upsert_records(conn, fetched) if fetched else []:
            summary.outcomes[outcome.value] = summary.outcomes.get(outcome.value, 0) + 1
    return summary


def _payload(record: Mapping[str, Any], procore_id: int, file_name: str,
             previous: Mapping[str, Any] | None) -> dict[str, Any]:
    payload = {**record, "id": procore_id, "_source": SOURCE, "_file": file_name}
    if previous and "cover_sheet" in previous:
        payload["cover_sheet"] = previous["cover_sheet"]
    return payload


def _stored(conn: psycopg.Connection[Any], kind: str, project_id: int,
            procore_ids: Sequence[int]) -> dict[int, tuple[bool, dict[str, Any]]]:
    """procore_id -> (is_deleted, payload) of the rows these ids already have."""
    rows = conn.execute(sql.SQL(
        "SELECT procore_id, is_deleted, payload FROM {table} WHERE kind = %s AND project_id = %s"
        " AND procore_id = ANY(%s)").format(table=sql.Identifier(table_for(kind))),
        (kind, project_id, list(procore_ids))).fetchall()
    return {int(r[0]): (bool(r[1]), r[2]) for r in rows}


# --- cover sheets ---

@dataclass
class CoverSheetResult:
    procore_id: int  # the submittal the links belong to (real id when the API has it)
    target: str  # "api" | "imported" | "superseded"
    jobs: list[FileJob]


def import_cover_sheet(conn: psycopg.Connection[Any], parsed: Mapping[str, Any], project_id: int,
                       verdicts: Sequence[LinkVerdict], now: datetime) -> CoverSheetResult:
    submittal: dict[str, Any] = dict(parsed["submittal"])
    sheet = {"file": parsed["file"], "attachments": [_attachment(v) for v in verdicts]}
    with conn.transaction():
        procore_id, target = _cover_target(conn, project_id, submittal)
        if target == "imported":
            previous = _stored(conn, "submittal", project_id, [procore_id]).get(procore_id)
            base = previous[1] if previous else {**submittal, "_source": SOURCE, "_file": parsed["file"]}
            payload = {**base, "id": procore_id, "cover_sheet": sheet}
            upsert_records(conn, [FetchedRecord("submittal", procore_id, project_id, payload, now, SOURCE)])
        jobs = _file_rows(conn, procore_id, project_id, sheet, verdicts)
        _log_links(conn, procore_id, project_id, parsed["file"], verdicts)
    return CoverSheetResult(procore_id, target, jobs)


def _attachment(verdict: LinkVerdict) -> dict[str, Any]:
    """A refused link keeps only its redacted form: nothing may ever fetch it from the payload."""
    if verdict.status is LinkStatus.REFUSED:
        return {"name": verdict.name, "status": verdict.status.value,
                "refused_url": verdict.redacted_url, "reason": verdict.reason}
    return {"name": verdict.name, "status": verdict.status.value, "url": verdict.url}


def _cover_target(conn: psycopg.Connection[Any], project_id: int,
                  submittal: Mapping[str, Any]) -> tuple[int, str]:
    number = str(submittal.get("number") or "")
    api = conn.execute(
        "SELECT procore_id, number FROM submittals WHERE kind = 'submittal' AND project_id = %s"
        " AND procore_id > 0 AND NOT is_deleted AND number IS NOT NULL ORDER BY procore_id",
        (project_id,)).fetchall()
    for real_id, api_number in api:
        if merge.matches({merge.number_key(str(api_number))}, dict(submittal)):
            return int(real_id), "api"
    procore_id = ids.synthetic_id(ids.record_key("submittal", project_id, submittal))
    previous = _stored(conn, "submittal", project_id, [procore_id]).get(procore_id)
    if number and previous is not None and previous[0]:
        return procore_id, "superseded"
    return procore_id, "imported"


def _file_rows(conn: psycopg.Connection[Any], procore_id: int, project_id: int,
               sheet: Mapping[str, Any], verdicts: Sequence[LinkVerdict]) -> list[FileJob]:
    """record_files rows for queued (pending) and expired links; FileJobs for the pending ones."""
    refs = {ref.url: ref for ref in file_refs("submittal", {"cover_sheet": sheet})}
    jobs = []
    for verdict in verdicts:
        if verdict.status not in (LinkStatus.QUEUED, LinkStatus.EXPIRED):
            continue
        ref = refs[verdict.url]
        state = files.FileState.PENDING if verdict.status is LinkStatus.QUEUED else files.FileState.EXPIRED
        stored = files.link_imported(conn, "submittal", procore_id, project_id, ref.url_field, verdict.url,
                                     state, verdict.reason if state is files.FileState.EXPIRED else None)
        if stored is files.FileState.PENDING:
            jobs.append(FileJob(kind="submittal", procore_id=procore_id, project_id=project_id,
                                url_field=ref.url_field, url=verdict.url, priority=ref.priority))
    return jobs


_LINK_ACTIONS = {LinkStatus.REFUSED: "link_refused", LinkStatus.EXPIRED: "link_expired",
                 LinkStatus.UNAVAILABLE: "link_unavailable"}


def _log_links(conn: psycopg.Connection[Any], procore_id: int, project_id: int, file_name: str,
               verdicts: Sequence[LinkVerdict]) -> None:
    entries: list[synclog.LogEntry] = [
        ("submittal", procore_id, project_id, _LINK_ACTIONS[v.status], v.status.value, None,
         {"url": v.redacted_url, "reason": v.reason, "name": v.name, "file": file_name,
          "attachment": v.index})
        for v in verdicts if v.status in _LINK_ACTIONS]
    if entries:
        synclog.insert_log(conn, entries)
