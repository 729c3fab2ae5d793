"""Rendering of a full-sync run's status (eva00/fullsync/status.py) while `eva00 full-sync --wait`
watches it: on a terminal, progress bars per phase and entity type (LiveReport); anywhere else
(a file, a pipe, a CI log) or with --json, one plain or JSON line every few seconds (LineReport);
then the summary table and the reasons of an incomplete run, aggregated per (kind, reason)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TextIO

import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from eva00.fullsync.ledger import PHASE_NAMES

# The keys of every progress line of `--json` (event "progress"), in this order; the summary
# line (event "summary") has these and SUMMARY_KEYS.
PROGRESS_KEYS = ("event", "at", "run_id", "status", "phase", "phase_name", "percent", "records", "pages",
                 "requests", "floor", "requests_over_floor", "rate_per_s", "files", "files_done",
                 "files_failed", "files_pending", "bytes", "bytes_done", "eta_s", "elapsed_s")
SUMMARY_KEYS = ("exit_code", "incomplete", "reasons", "unavailable", "error_list", "kinds")


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


# --- lines (a file, a pipe, a CI log; or --json) ---

def progress_record(status: dict[str, Any], at_s: float, event: str = "progress") -> dict[str, Any]:
    """The PROGRESS_KEYS of a status: what one line says."""
    phase = status["current_phase"]
    if phase is not None:
        phase_name = PHASE_NAMES[phase]
    elif status["status"] != "running" and status["files_pending"]:
        phase_name = "downloads"  # the records are in; the files still come
    else:
        phase_name = status["status"]
    values = {"event": event, "at": round(at_s, 3), "phase": phase, "phase_name": phase_name,
              "records": status["items"]}
    return {key: values[key] if key in values else status[key] for key in PROGRESS_KEYS}


def progress_line(record: dict[str, Any]) -> str:
    """``12:00:03 full sync fs-1 running | phase 2 active data 43.0% | records 1234 | ...``."""
    at = datetime.fromtimestamp(record["at"]).strftime("%H:%M:%S")
    phase = f"phase {record['phase']} " if record["phase"] is not None else ""
    return " | ".join([
        f"{at} full sync {record['run_id']} {record['status']}",
        f"{phase}{record['phase_name']} {record['percent']:.1f}%",
        f"records {record['records']}",
        f"requests {record['requests']} / floor {record['floor']} ({record['rate_per_s']:.2f} req/s)",
        f"files {record['files_done']}/{record['files']}"
        + (f" ({record['files_failed']} failed)" if record["files_failed"] else ""),
        f"{_mb(record['bytes_done'])} / {_mb(record['bytes'])}",
        f"ETA {_duration(record['eta_s'])}",
        f"elapsed {_duration(record['elapsed_s'])}",
    ])


class LineReport:
    """One line every ``every_s`` seconds (the first at once), plain or JSON; then the summary.

    Warnings go to stderr, so that with --json stdout holds only JSON lines."""

    def __init__(self, out: TextIO, every_s: float, *, as_json: bool,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.out, self.every_s, self.as_json = out, every_s, as_json
        self.clock, self.monotonic = clock, monotonic
        self.last_s: float | None = None

    def __enter__(self) -> LineReport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.out.flush()

    def show(self, status: dict[str, Any]) -> None:
        now = self.monotonic()
        if self.last_s is not None and now - self.last_s < self.every_s:
            return
        self.last_s = now
        self._write(progress_record(status, self.clock()))

    def note(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def summary(self, status: dict[str, Any], incomplete: Sequence[str], exit_code: int) -> None:
        record = progress_record(status, self.clock(), event="summary" if self.as_json else "progress")
        if self.as_json:
            self._write({**record, "exit_code": exit_code, "incomplete": list(incomplete),
                         "reasons": status["reasons"], "unavailable": status["unavailable"],
                         "error_list": status["error_list"],
                         "kinds": status["kinds"]})
            return
        self._write(record)
        console = Console(file=self.out)
        console.width = max(console.width, 120)  # a log is read wider than a default terminal
        console.print(summary_table(status))
        print_unavailable(console, status["unavailable"])
        print_incomplete(console, incomplete)

    def _write(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record).decode() if self.as_json else progress_line(record)
        self.out.write(line + "\n")
        self.out.flush()


# --- a terminal ---

class LiveReport:
    """The progress bars, redrawn in place; then the summary table."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.view = ProgressView()
        self.live: Live | None = None

    def __enter__(self) -> LiveReport:
        self.live = Live(console=self.console, refresh_per_second=4)
        self.live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.__exit__(exc_type, exc, tb)
            self.live = None

    def show(self, status: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.update(self.view.update(status))

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]{escape(text)}[/yellow]")

    def summary(self, status: dict[str, Any], incomplete: Sequence[str], exit_code: int) -> None:
        self.__exit__(None, None, None)  # the bars stay on screen as they were last drawn
        self.console.print(summary_table(status))
        print_unavailable(self.console, status["unavailable"])
        print_incomplete(self.console, incomplete)


def print_unavailable(console: Console, groups: Sequence[dict[str, Any]]) -> None:
    """The tools Procore refused as switched off in some projects: one row per (kind, reason)."""
    if not groups:
        return
    table = Table(title="unavailable (a tool switched off in the project; asked again daily)")
    for column in ("entity type", "why", "projects", "e.g."):
        table.add_column(column, justify="right" if column == "projects" else "left")
    for group in groups:
        table.add_row(group["kind"], group["reason"], str(group["projects"]),
                      ", ".join(str(e) for e in group["examples"]))
    console.print(table)


def print_incomplete(console: Console, incomplete: Sequence[str]) -> None:
    """``incomplete:`` and one line per reason (aggregated per kind and reason)."""
    if not incomplete:
        return
    console.print(f"[red]incomplete:[/red] {len(incomplete)} reason{'s' if len(incomplete) != 1 else ''}")
    for line in incomplete:
        console.print(f"  {escape(line)}", soft_wrap=True)
