"""sync_log retention: rows older than N days go to monthly gzip JSON-lines files under
EVA00_DATA_DIR/archive/ (sync_log-YYYY-MM.jsonl.gz, one gzip member per batch, so `zcat` reads a
month whole), and only then leave the table.

Guarantee: a row is deleted only in the transaction that marks its batch done, after the batch's
gzip member was fsynced into the month's file; a crash anywhere loses no row and duplicates none.
Each batch walks planned -> appending -> done in `archive_batches`: `planned` holds the row ids,
`appending` records the file's size before the append (committed first), and a re-run truncates
the file back to that size before appending again, so a half-written or unrecorded member is
replaced, never repeated. One archiver at a time (an advisory lock); re-running is always safe.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from eva00.config import Settings
from eva00.replica.filestore import fsync_path

log = logging.getLogger(__name__)

ARCHIVE_LOCK_KEY = 0x0E7A01
_COLUMNS = ("id", "at", "kind", "procore_id", "project_id", "direction", "action", "result",
            "payload_hash", "detail")


class ArchiveBusy(Exception):
    """Another archiver holds the lock."""


@dataclass(frozen=True)
class ArchiveResult:
    batches: int
    rows: int
    files: list[str]


def month_path(archive_dir: Path, month: str) -> Path:
    return archive_dir / f"sync_log-{month}.jsonl.gz"


def encode_rows(rows: Sequence[tuple[Any, ...]]) -> bytes:
    """One gzip member of JSON lines (mtime 0: the same rows always give the same bytes)."""
    lines = b"".join(orjson.dumps(dict(zip(_COLUMNS, row, strict=True))) + b"\n" for row in rows)
    return gzip.compress(lines, mtime=0)


class Archiver:
    """``fault(step)`` is called between steps; tests raise there to simulate a crash."""

    def __init__(self, settings: Settings, conn: psycopg.Connection, *, batch_rows: int = 5000,
                 retention_days: int | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 fault: Callable[[str], None] = lambda step: None) -> None:
        self.conn = conn
        self.archive_dir = settings.data_dir / "archive"
        self.retention = timedelta(days=retention_days or settings.sync_log_retention_days)
        self.batch_rows, self.clock, self.fault = batch_rows, clock, fault

    def run(self) -> ArchiveResult:
        if not self.conn.autocommit:
            raise ValueError("the archiver needs an autocommit connection: each step commits alone")
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        if not self.conn.execute("SELECT pg_try_advisory_lock(%s)", (ARCHIVE_LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
            raise ArchiveBusy("another `eva00 archive` is running")
        try:
            return self._run()
        finally:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (ARCHIVE_LOCK_KEY,))

    def _run(self) -> ArchiveResult:
        batches, rows, files = 0, 0, set[str]()
        cutoff = self.clock() - self.retention
        while True:
            batch = self._unfinished() or self._plan(cutoff)
            if batch is None:
                return ArchiveResult(batches, rows, sorted(files))
            batch_id, month, ids = batch
            self._finish(batch_id, month, ids)
            batches, rows = batches + 1, rows + len(ids)
            files.add(str(month_path(self.archive_dir, month)))

    def _unfinished(self) -> tuple[int, str, list[int]] | None:
        row = self.conn.execute("SELECT id, month, row_ids FROM archive_batches WHERE status <> 'done'"
                                " ORDER BY id LIMIT 1").fetchone()
        return (row[0], row[1], list(row[2])) if row else None

    def _plan(self, cutoff: datetime) -> tuple[int, str, list[int]] | None:
        """The oldest month's next rows, recorded as a batch before anything is written."""
        with self.conn.transaction():
            first = self.conn.execute("SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') FROM sync_log"
                                      " WHERE at < %s ORDER BY at LIMIT 1", (cutoff,)).fetchone()
            if first is None:
                return None
            month = first[0]
            ids = [r[0] for r in self.conn.execute(
                "SELECT id FROM sync_log WHERE at < %s AND to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') = %s"
                " ORDER BY id LIMIT %s", (cutoff, month, self.batch_rows))]
            batch_id = self.conn.execute("INSERT INTO archive_batches (month, row_ids) VALUES (%s, %s)"
                                         " RETURNING id", (month, ids)).fetchone()[0]  # type: ignore[index]
        self.fault("planned")
        return batch_id, month, ids

    def _finish(self, batch_id: int, month: str, ids: list[int]) -> None:
        rows = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM sync_log WHERE id = ANY(%s)"
                                 " ORDER BY id", (ids,)).fetchall()
        member = encode_rows(rows)
        path = month_path(self.archive_dir, month)
        offset = self._start_append(batch_id, path)
        self.fault("appending")
        end = self._append(path, offset, member)
        self.fault("appended")
        with self.conn.transaction():
            self.conn.execute("DELETE FROM sync_log WHERE id = ANY(%s)", (ids,))
            self.conn.execute("UPDATE archive_batches SET status = 'done', end_offset_bytes = %s,"
                              " done_at = now() WHERE id = %s", (end, batch_id))
        log.info("archived %d sync_log rows to %s (batch %d)", len(rows), path.name, batch_id)

    def _start_append(self, batch_id: int, path: Path) -> int:
        """The file's size before this batch, committed before the first byte is written; a
        re-run of an 'appending' batch reuses the recorded offset."""
        with self.conn.transaction():
            row = self.conn.execute("SELECT status, offset_bytes FROM archive_batches WHERE id = %s",
                                    (batch_id,)).fetchone()
            assert row is not None
            if row[0] == "appending":
                return int(row[1])
            offset = path.stat().st_size if path.exists() else 0
            self.conn.execute("UPDATE archive_batches SET status = 'appending', offset_bytes = %s"
                              " WHERE id = %s", (offset, batch_id))
        return offset

    def _append(self, path: Path, offset: int, member: bytes) -> int:
        created = not path.exists()
        with open(path, "wb" if created else "r+b") as handle:
            handle.truncate(offset)  # drop whatever an interrupted attempt left after the offset
            handle.seek(offset)
            half = len(member) // 2
            handle.write(member[:half])
            handle.flush()
            self.fault("half-written")
            handle.write(member[half:])
            handle.flush()
            os.fsync(handle.fileno())
            end = handle.tell()
        if created:
            fsync_path(path.parent)
        return end
