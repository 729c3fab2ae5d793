"""sync_log retention: old rows go to monthly gzip JSON lines, then leave the table; a crash at any
step loses no row and duplicates none."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from eva00.cli.archive import main
from eva00.config import Settings
from eva00.ops.archive import ArchiveBusy, Archiver

NOW = datetime(2030, 6, 15, tzinfo=UTC)
STEPS = ("planned", "appending", "half-written", "appended")


class Crash(Exception):
    pass


def seed(settings: Settings) -> list[int]:
    """12 rows in each of two old months, 3 recent ones; returns the old rows' ids."""
    old = [NOW - timedelta(days=200 - d) for d in range(12)]
    old += [NOW - timedelta(days=150 - d) for d in range(12)]
    with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
        ids = [conn.execute("INSERT INTO sync_log (at, kind, procore_id, action, detail) VALUES"
                            " (%s, 'rfi', %s, 'update', '{\"n\": 1}') RETURNING id", (at, i)).fetchone()[0]  # type: ignore[index]
               for i, at in enumerate(old)]
        for i in range(3):
            conn.execute("INSERT INTO sync_log (at, kind, procore_id, action)"
                         " VALUES (%s, 'rfi', %s, 'insert')",
                         (NOW - timedelta(days=1), 100 + i))
    return ids


def archived_ids(settings: Settings) -> list[int]:
    lines = []
    for path in sorted((settings.data_dir / "archive").glob("sync_log-*.jsonl.gz")):
        with gzip.open(path, "rt") as handle:
            lines += [line for line in handle if line.strip()]
    import json

    return sorted(json.loads(line)["id"] for line in lines)


def remaining(settings: Settings) -> int:
    with psycopg.connect(settings.effective_database_url) as conn:
        return int(conn.execute("SELECT count(*) FROM sync_log").fetchone()[0])  # type: ignore[index]


def run(settings: Settings, fault: str | None = None, occurrence: int = 1) -> None:
    seen = {"n": 0}

    def inject(step: str) -> None:
        if step == fault:
            seen["n"] += 1
            if seen["n"] == occurrence:
                raise Crash(step)

    with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
        Archiver(settings, conn, batch_rows=5, clock=lambda: NOW, fault=inject).run()


def test_old_rows_are_archived_by_month_then_removed_and_recent_rows_stay(settings: Settings) -> None:
    ids = seed(settings)
    run(settings)
    assert archived_ids(settings) == sorted(ids)
    assert remaining(settings) == 3
    names = sorted(p.name for p in (settings.data_dir / "archive").iterdir())
    assert names == ["sync_log-2029-11.jsonl.gz", "sync_log-2029-12.jsonl.gz", "sync_log-2030-01.jsonl.gz"]


def test_a_rerun_with_nothing_old_changes_nothing(settings: Settings) -> None:
    ids = seed(settings)
    run(settings)
    run(settings)
    assert archived_ids(settings) == sorted(ids)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("occurrence", [1, 3])
def test_a_crash_at_any_step_neither_loses_nor_duplicates_rows(
        settings: Settings, step: str, occurrence: int) -> None:
    ids = seed(settings)
    with pytest.raises(Crash):
        run(settings, step, occurrence)
    run(settings)
    assert archived_ids(settings) == sorted(ids)
    assert remaining(settings) == 3


def test_the_archive_reads_with_zcat(settings: Settings) -> None:
    seed(settings)
    with pytest.raises(Crash):
        run(settings, "half-written", 2)  # leaves a torn member behind in a month's file
    run(settings)
    zcat = shutil.which("zcat")
    assert zcat, "zcat (gzip) must be installed"
    out = subprocess.run([zcat, str(settings.data_dir / "archive" / "sync_log-2029-11.jsonl.gz")],
                         check=True, capture_output=True, text=True).stdout
    assert len(out.splitlines()) == 4  # 2029-11-27 .. 2029-11-30


def test_a_killed_archiver_process_is_completed_by_the_next_run(settings: Settings, tmp_path: Path) -> None:
    ids = seed(settings)
    script = textwrap.dedent(f"""
        import os, signal
        from datetime import datetime, UTC
        import psycopg
        from eva00.ops.archive import Archiver
        from eva00.config import Settings
        settings = Settings.from_env({{"DATABASE_URL": {settings.database_url!r},
                                      "REDIS_URL": {settings.redis_url!r},
                                      "EVA00_DATA_DIR": {str(settings.data_dir)!r}}}, dotenv=None)
        def kill(step):
            if step == "half-written":
                os.kill(os.getpid(), signal.SIGKILL)
        with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
            Archiver(settings, conn, batch_rows=5, clock=lambda: datetime.fromisoformat({NOW.isoformat()!r}),
                     fault=kill).run()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    run(settings)
    assert archived_ids(settings) == sorted(ids)


def test_a_second_archiver_waits_its_turn(settings: Settings) -> None:
    seed(settings)
    with psycopg.connect(settings.effective_database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (0x0E7A01,))
        with psycopg.connect(settings.effective_database_url, autocommit=True) as conn, \
                pytest.raises(ArchiveBusy):
            Archiver(settings, conn, clock=lambda: NOW).run()


def test_eva00_archive_command_uses_the_retention_setting(settings: Settings,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    seed(settings)
    assert main(["--days", "1000"], settings=settings) == 0
    assert remaining(settings) == 27
    assert main([], settings=settings) == 0  # 90 days before the real today: all seeded rows are future
    assert "archived 0 rows" in capsys.readouterr().out
