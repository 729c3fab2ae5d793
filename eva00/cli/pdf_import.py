"""`eva00 import rfi-log | submittal-log | cover-sheet FILE.pdf --project ID [options]`.

Each file is parsed in the sandboxed worker, then (unless ``--dry-run``) written to the replica
in one transaction; ``--json`` prints the parsed result to stdout, the summary goes to stderr.
A file that cannot be imported prints one line naming the file and the reason and exits 1 with
nothing written. Cover sheets' links are judged by the SSRF guard (``EVA00_STORAGE_HOSTS``) and
the allowed ones are queued for the downloader after COMMIT.

Exit codes: 0 imported, 1 bad input, 2 usage, 3 PostgreSQL or Redis unreachable, 78 configuration.
"""

from __future__ import annotations

import argparse
import logging
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from eva00.config import EXIT_CONFIG, ConfigError, Settings
from eva00.pdf_import.sandbox import Limits, ParseFailed, parse_in_child
from eva00.pdf_import.urlguard import Resolver, redact

log = logging.getLogger(__name__)

EXIT_BAD_INPUT = 1
EXIT_UNAVAILABLE = 3
COMMANDS = {"rfi-log": "rfi", "submittal-log": "submittal", "cover-sheet": "cover_sheet"}


@dataclass(frozen=True)
class Environment:
    """What the command talks to; tests replace the resolver, TLS context and clock."""

    settings: Settings
    resolver: Resolver = socket.getaddrinfo
    context: ssl.SSLContext | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eva00 import", description="Import Procore PDF exports.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("rfi-log", "an RFI log (with or without questions and responses)"),
                       ("submittal-log", "a submittal log"),
                       ("cover-sheet", "a submittal cover sheet and its attachment links")):
        cmd = sub.add_parser(name, help=f"import {text}")
        cmd.add_argument("file", type=Path)
        cmd.add_argument("--project", type=_positive, required=True, help="Procore project id")
        cmd.add_argument("--date-format", choices=("auto", "mdy", "dmy"), default="auto",
                         help="numeric date order; auto decides from the file's dates")
        cmd.add_argument("--dry-run", action="store_true", help="parse (and judge links) only")
        cmd.add_argument("--json", action="store_true", help="print the parsed result as JSON")
        cmd.add_argument("--max-pages", type=_positive, default=Limits.max_pages,
                         help="refuse longer PDFs")
        cmd.add_argument("--timeout-s", type=float, default=Limits.wall_s,
                         help="stop parsing after this long")
        if name == "cover-sheet":
            cmd.add_argument("--no-probe", action="store_true",
                             help="judge links without asking storage (redirects then unchecked)")
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return number


def main(argv: list[str], env: Environment | None = None) -> int:
    args = build_parser().parse_args(argv)
    if env is None:
        try:
            env = Environment(Settings.from_env())
        except ConfigError as exc:
            print(f"eva00 import: configuration error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    kind = COMMANDS[args.command]
    limits = Limits(max_pages=args.max_pages, wall_s=args.timeout_s, cpu_s=max(1, int(args.timeout_s)))
    try:
        parsed = parse_in_child(kind, args.file, args.date_format, limits)
    except ParseFailed as exc:
        print(f"eva00 import: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if kind == "cover_sheet":
        return _cover_sheet(args, env, parsed)
    return _log(args, env, parsed)


def _log(args: argparse.Namespace, env: Environment, parsed: dict[str, Any]) -> int:
    if args.json:
        _print_json(parsed)
    title = "RFI log" if parsed["kind"] == "rfi" else "submittal log"
    head = (f"{title} {args.file.name}: {len(parsed['records'])} records from {parsed['pages']} pages"
            f" (dates {parsed['date_format']})")
    for warning in parsed["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if args.dry_run:
        print(f"{head}; dry run, nothing written", file=sys.stderr)
        return 0
    import psycopg

    from eva00.pdf_import import store

    try:
        with psycopg.connect(env.settings.effective_database_url) as conn:
            summary = store.import_log(conn, parsed, args.project, env.now())
    except psycopg.OperationalError as exc:
        print(f"eva00 import: {args.file}: PostgreSQL is not reachable ({_first(exc)})", file=sys.stderr)
        return EXIT_UNAVAILABLE
    outcomes = ", ".join(f"{n} {name}" for name, n in sorted(summary.outcomes.items())) or "nothing new"
    print(f"{head}: {outcomes}; {summary.skipped_api} already synced from the API, "
          f"{summary.skipped_superseded} superseded by the API", file=sys.stderr)
    return 0


def _cover_sheet(args: argparse.Namespace, env: Environment, parsed: dict[str, Any]) -> int:
    from eva00.pdf_import.links import LinkStatus, judge_links

    verdicts = judge_links(parsed["attachments"], env.settings.storage_hosts,
                           probe_links=not args.no_probe, resolver=env.resolver, context=env.context,
                           timeout_s=min(env.settings.http_timeout_s, 30.0))
    for v in verdicts:
        if v.status is not LinkStatus.QUEUED:
            log.warning("cover sheet %s: link %r %s: %s (%s)", args.file.name, v.name, v.status.value,
                        v.redacted_url, v.reason)
    if args.json:
        _print_json({**parsed, "attachments": [
            {"name": v.name, "url": v.redacted_url, "status": v.status.value, "reason": v.reason}
            for v in verdicts]})
    counts = {s.value: sum(v.status is s for v in verdicts) for s in LinkStatus}
    number = parsed["submittal"].get("formatted_number")
    head = (f"cover sheet {args.file.name}: submittal {number}, {len(verdicts)} links: "
            + ", ".join(f"{n} {name}" for name, n in counts.items()))
    if args.dry_run:
        print(f"{head}; dry run, nothing written or queued", file=sys.stderr)
        return 0
    return _store_cover_sheet(args, env, parsed, verdicts, head)


def _store_cover_sheet(args: argparse.Namespace, env: Environment, parsed: dict[str, Any],
                       verdicts: list[Any], head: str) -> int:
    import psycopg
    import redis

    from eva00 import keys
    from eva00.pdf_import import store
    from eva00.runtime.bus import Bus

    try:
        with psycopg.connect(env.settings.effective_database_url) as conn:
            result = store.import_cover_sheet(conn, parsed, args.project, verdicts, env.now())
        if result.jobs:
            client = redis.Redis.from_url(env.settings.effective_redis_url, socket_timeout=10)
            try:
                Bus(client, "pdf-import", maxlen=env.settings.stream_maxlen).forward(
                    None, [(keys.file_stream(job.priority), job) for job in result.jobs])
            finally:
                client.close()
    except (psycopg.OperationalError, redis.ConnectionError, redis.TimeoutError) as exc:
        print(f"eva00 import: {args.file}: {_first(exc)} (pending links are queued again on the "
              "next import of this sheet)", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"{head}; {len(result.jobs)} queued for download on submittal {result.procore_id}"
          f" ({result.target} row)", file=sys.stderr)
    return 0


def _print_json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _first(exc: BaseException) -> str:
    lines = redact(str(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main(sys.argv[1:]))
