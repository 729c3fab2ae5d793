"""`eva00 archive [--days N]`: sync_log retention (eva00/ops/archive.py) run once from the shell;
exit 3 while another archiver holds the lock."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import psycopg

from eva00.config import Settings
from eva00.ops.archive import ArchiveBusy, Archiver


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """`eva00 archive [--days N]`: archive, then remove, sync_log rows older than the retention."""
    parser = argparse.ArgumentParser(prog="eva00 archive", description=main.__doc__)
    parser.add_argument("--days", type=int, default=None, help="override EVA00_SYNC_LOG_RETENTION_DAYS")
    parser.add_argument("--batch-rows", type=int, default=5000)
    args = parser.parse_args(argv)
    if settings is None:
        from eva00.config import load_or_exit

        settings = load_or_exit()
    with psycopg.connect(settings.effective_database_url, autocommit=True) as conn:
        try:
            result = Archiver(settings, conn, batch_rows=args.batch_rows, retention_days=args.days).run()
        except ArchiveBusy as exc:
            print(f"eva00 archive: {exc}")
            return 3
    print(f"archived {result.rows} rows in {result.batches} batches"
          + "".join(f"\n  {f}" for f in result.files))
    return 0
