"""Rich rendering of a full-sync run's status (eva00/fullsync/status.py): progress bars per phase and
entity type while it runs, and the final summary table."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from eva00.fullsync.ledger import PHASE_NAMES


def _mb(size_bytes: int) -> str:
    return f"{size_bytes / 1_048_576:.1f} MB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressView:
    """One bar per (phase, kind): polls finished of polls started; fields say the rest."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<34}"), BarColumn(bar_width=24),
            TextColumn("{task.fields[items]:>7} items {task.fields[requests]:>6} req"
                       " {task.fields[files]:>12} {task.fields[bytes]:>18} {task.fields[state]}"))
        self.tasks: dict[str, TaskID] = {}
        self.header = ""

    def update(self, status: dict[str, Any]) -> Group:
        for kind in status["kinds"]:
            name = kind["kind"]
            fields = dict(items=kind["items"], requests=kind["requests"],
                          files=f"{kind['files_done']}/{kind['files']} files",
                          bytes=f"{_mb(kind['bytes_done'])}/{_mb(kind['bytes'])}",
                          state=kind["state"] + (f" ({kind['errors']} errors)" if kind["errors"] else ""))
            total = max(kind["polls"], 1)
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(
                    f"{kind['phase']} {PHASE_NAMES[kind['phase']][:12]:<12} {name}", total=total,
                    completed=0, **fields)
            self.progress.update(self.tasks[name], total=total, completed=kind["polls_finished"]
                                 if kind["polls"] else 0, **fields)
        self.header = (f"full sync {status['run_id']}  phase {status['current_phase'] or '-'}  "
                       f"requests {status['requests']} (floor {status['floor']})  "
                       f"{status['rate_per_s']:.2f} req/s  ETA {_duration(status['eta_s'])}  "
                       f"elapsed {_duration(status['elapsed_s'])}  files {status['files_done']}"
                       f"/{status['files']} ({_mb(status['bytes_done'])})")
        return Group(self.header, self.progress)


def summary_table(status: dict[str, Any]) -> Table:
    table = Table(title=f"full sync {status['run_id']}: {status['status']}")
    for column in ("phase", "entity type", "items", "requests", "floor", "files", "bytes", "errors"):
        table.add_column(column, justify="left" if column == "entity type" else "right")
    for kind in status["kinds"]:
        table.add_row(str(kind["phase"]), kind["kind"], str(kind["items"]), str(kind["requests"]),
                      str(kind["floor"]), f"{kind['files_done']}/{kind['files']}",
                      _mb(kind["bytes"]), str(kind["errors"]))
    ratio = status["requests_over_floor"]
    table.add_section()
    table.add_row("", "total", str(status["items"]), str(status["requests"]), str(status["floor"]),
                  f"{status['files_done']}/{status['files']}", _mb(status["bytes"]), str(status["errors"]))
    table.caption = (f"time {_duration(status['elapsed_s'])}; requests / floor "
                     f"{ratio if ratio is not None else '-'}; with the downloads' API hops "
                     f"{status['requests'] + status['file_requests']} / "
                     f"{status['floor'] + status['file_floor']} = {status['api_requests_over_floor'] or '-'}")
    return table
