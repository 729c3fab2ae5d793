"""`eva00 full-sync [--project ID ...] [--phase N ...] [--wait] [--status [--json]]`.

Starts the initial full sync (or resumes it, or reopens it when incomplete) and, with --wait, watches
it to the end (and, unless --no-files, until its files are downloaded): progress bars on a terminal;
one plain line every --progress-every seconds when stdout is a file, a pipe or a CI log; JSON lines
with --json. The command only enqueues and watches: the supervisord stages do the work, so Ctrl-C
stops the watching and nothing else, and the next `eva00 full-sync` continues the same run.

Exit codes: 0 complete (a tool switched off in some projects is listed as unavailable, not an
error); 1 incomplete (its reasons are printed, one line per kind and reason); 2 usage;
3 still running (without --wait), or no run (--status); 69 PostgreSQL or Redis unreachable; 130
interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import redis

from eva00 import keys
from eva00.config import Settings, load_or_exit
from eva00.fullsync.ledger import PHASES
from eva00.fullsync.run import FullSync, Run
from eva00.fullsync.status import run_status

if TYPE_CHECKING:
    from eva00.fullsync.progress import LineReport, LiveReport

EXIT_INCOMPLETE, EXIT_RUNNING, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 1, 3, 69, 130
CONNECT_TIMEOUT_S = 30.0
# A fetcher blocked on the stream still touches its consumer entry every few seconds; one
# silent for this long is gone.
FETCHER_IDLE_S = 60.0
PROGRESS_EVERY_S = 10.0  # a progress line this often when stdout is not a terminal


def _positive_s(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eva00 full-sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=int, action="append", dest="projects", metavar="ID",
                        help="only these projects (repeatable; default: every project)")
    parser.add_argument("--phase", type=int, action="append", dest="phases", choices=sorted(PHASES),
                        help="only these phases (repeatable; default: 1 2 3 4)")
    parser.add_argument("--wait", action="store_true", help="watch the run to its end")
    parser.add_argument("--status", action="store_true", help="print the latest run's progress")
    parser.add_argument("--json", action="store_true",
                        help="with --status: as JSON; with --wait: progress and summary as JSON lines")
    parser.add_argument("--where", action="store_true",
                        help="at the end, print where to look (dashboard, status, backlogs, database)")
    parser.add_argument("--new", action="store_true",
                        help="start a new run even if the last one of this scope completed")
    parser.add_argument("--no-files", action="store_true",
                        help="with --wait: end when the records are in, without waiting for downloads")
    parser.add_argument("--connect-timeout-s", type=float, default=CONNECT_TIMEOUT_S,
                        help="how long to wait for PostgreSQL and Redis")
    parser.add_argument("--interval-s", type=float, default=1.0, help="refresh interval of --wait")
    parser.add_argument("--progress-every", type=_positive_s, default=PROGRESS_EVERY_S, metavar="SECONDS",
                        help="with --wait, off a terminal or with --json: seconds between progress lines"
                             f" (default {PROGRESS_EVERY_S:g})")
    parser.add_argument("--heal-after-s", type=float, default=30.0,
                        help="re-enqueue jobs no stream holds after this long without progress")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import psycopg

    from eva00.runtime import db
    from eva00.runtime.process import redis_client, wait_for_redis

    settings = load_or_exit()
    try:
        db.wait_until_ready(settings, timeout_s=args.connect_timeout_s)
        client = redis_client(settings)
        wait_for_redis(client, args.connect_timeout_s)
    except (psycopg.OperationalError, redis.RedisError) as exc:
        print(f"eva00 full-sync: cannot reach {type(exc).__module__.split('.')[0]}: "
              f"{str(exc).splitlines()[0] if str(exc) else exc}. Is the stack up? (`make up`)",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    pool = db.make_pool(settings, max_size=2, name="full-sync")
    sync = FullSync(settings, client, pool)
    try:
        if args.status:
            return _print_status(sync, args.json)
        run = sync.start(args.projects, args.phases or sorted(PHASES), new=args.new)
        said = sys.stderr if args.json else sys.stdout  # with --json, stdout holds only JSON lines
        if run.status == "complete":
            print(f"full sync {run.run_id} of this scope is complete; `eva00 full-sync --new` starts"
                  " another (everyday polling keeps the replica fresh meanwhile)", file=said)
            code = _print_summary(sync, run, _report(args)) if args.wait and args.json else (
                _print_status(sync, False))
            if args.where:
                print(where_to_look(settings), file=said)
            return code
        sync.heal(run)  # a re-run: whatever Redis lost is queued again from PostgreSQL
        run = sync.step(run)
        if not args.wait:
            print(f"full sync {run.run_id}: {run.status}; the scheduler carries it on. Watch it with"
                  " `eva00 full-sync --wait` or `eva00 full-sync --status`", file=said)
            return _exit_code(run)
        with _report(args) as report:
            code = _watch(sync, run, report, Watch(args.interval_s, args.heal_after_s, not args.no_files,
                                                   args.progress_every if _lines(args) else None))
        if args.where:
            print(where_to_look(settings), file=said)
        return code
    except KeyboardInterrupt:
        print("\nstopped watching; the stages go on. Run `eva00 full-sync --wait` again to resume"
              " watching (or to continue after a stop).", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        pool.close()


def _print_status(sync: FullSync, as_json: bool) -> int:
    run = sync.load()
    if run is None:
        print("no full sync has run yet", file=sys.stderr)
        return EXIT_RUNNING
    status = run_status(sync, run)
    if as_json:
        sys.stdout.write(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        from rich.console import Console

        from eva00.fullsync.progress import print_incomplete, print_unavailable, summary_table

        console = Console()
        console.print(summary_table(status))
        print_unavailable(console, status["unavailable"])
        if run.status != "running":
            print_incomplete(console, incomplete_lines(run, status, wait_files=False))
    return 0


def _report(args: argparse.Namespace) -> LineReport | LiveReport:
    """Progress bars on a terminal; plain lines in a file, a pipe or a CI log; JSON lines with --json."""
    from eva00.fullsync.progress import LineReport, LiveReport

    if _lines(args):
        return LineReport(sys.stdout, args.progress_every, as_json=args.json)
    return LiveReport()


def _lines(args: argparse.Namespace) -> bool:
    return bool(args.json) or not sys.stdout.isatty()


def _print_summary(sync: FullSync, run: Run, report: LineReport | LiveReport) -> int:
    with report:
        report.summary(run_status(sync, run), [], 0)
    return 0


@dataclass(frozen=True)
class Watch:
    interval_s: float  # between two looks at the run
    heal_after_s: float  # re-enqueue lost jobs after this long without progress
    wait_files: bool  # until the downloads are done, not only the records
    lines_every_s: float | None  # a line this often (None: progress bars)

    @property
    def tick_s(self) -> float:
        return min(self.interval_s, self.lines_every_s or self.interval_s)


def _watch(sync: FullSync, run: Run, report: LineReport | LiveReport, watch: Watch) -> int:
    status = run_status(sync, run)
    report.show(status)
    last_progress, last_change = -1, time.monotonic()
    while run.status == "running" or (watch.wait_files and status["files_pending"]):
        time.sleep(watch.tick_s)
        run = sync.step(run)
        status = run_status(sync, run)
        report.show(status)
        progress = status["requests"] + status["pages"] + status["files_done"] + status["files_failed"]
        if progress != last_progress:
            last_progress, last_change = progress, time.monotonic()
        elif time.monotonic() - last_change > watch.heal_after_s:
            # Nothing moved for a while: Redis may have lost the run's jobs, or no stage runs.
            if run.status == "running":
                sync.heal(run, grace_s=watch.heal_after_s)
            last_change = time.monotonic()
            if run.status == "running" and not fetchers_alive(sync.redis):
                report.note("no fetcher is reading the job stream: are the stages running?"
                            " (`make up`, `eva00 ps`)")
    incomplete = incomplete_lines(run, status, watch.wait_files)
    code = EXIT_INCOMPLETE if incomplete else 0
    report.summary(status, incomplete, code)
    return code


def incomplete_lines(run: Run, status: dict[str, Any], wait_files: bool) -> list[str]:
    """Why the run is not complete: one line per (kind, reason), then the failed files."""
    from eva00.fullsync.reasons import lines

    found = [] if run.status == "complete" else lines(status["reasons"]) or [run.reason or run.status]
    if wait_files and status["files_failed"]:
        found.append(f"{status['files_failed']} files failed or expired (`eva00 status` lists them)")
    return found


def where_to_look(settings: Settings) -> str:
    from urllib.parse import urlsplit

    redis_at = urlsplit(settings.effective_redis_url)
    database = urlsplit(settings.effective_database_url)
    if database.password:  # never print a password
        database = database._replace(netloc=database.netloc.replace(f":{database.password}@", ":***@"))
    # The embedded Redis asks for its app user's password, read from its file (never printed).
    redis_auth = (f'REDISCLI_AUTH="$(cat {settings.secrets_dir / "redis-app.password"})" '
                  if settings.embedded_redis else "")
    redis_user = f" --user {redis_at.username}" if redis_at.username else ""
    return "\n".join([
        "",
        "Where to look:",
        f"  dashboard        http://127.0.0.1:{settings.dashboard_port}/",
        "  status           make status   (processes, stream backlogs, freshness, alerts)",
        f"  stream backlogs  {redis_auth}redis-cli -h {redis_at.hostname} -p {redis_at.port or 6379}"
        f"{redis_user} XINFO GROUPS eva00:sync:scheduled   (or `eva00 backlog`)",
        f"  the replica      psql '{database.geturl()}'   (views in schema live)",
        "  full-text        eva00 search 'concrete'",
        "  progress (JSON)  eva00 full-sync --status --json",
        "  stop             make down",
    ])


def fetchers_alive(client: redis.Redis) -> bool:
    try:
        consumers = client.xinfo_consumers(keys.STREAM_SYNC_SCHEDULED, keys.GROUP_FETCHERS)
    except redis.ResponseError:
        return False  # no group yet: no fetcher ever started
    return any(int(c["idle"]) < FETCHER_IDLE_S * 1000 for c in consumers)


def _exit_code(run: Run) -> int:
    return {"complete": 0, "incomplete": EXIT_INCOMPLETE}.get(run.status, EXIT_RUNNING)
