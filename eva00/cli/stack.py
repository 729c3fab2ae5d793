"""`eva00 up|down|ps|backlog|config`: the supervisord stack as a whole (start, stop, state), its
stream backlogs and the configuration it reads. Each command imports what it drives only when
run, so a broken optional part never stops `eva00 up` from working."""

from __future__ import annotations

import argparse
import sys

from eva00.config import load_or_exit


def cmd_up(args: argparse.Namespace) -> int:
    from eva00.ops import supervision

    settings = load_or_exit()
    infos = supervision.up(settings, wait_s=args.wait_s)
    print(supervision.format_status(infos))
    bad = [i for i in infos if i["statename"] not in ("RUNNING", "STOPPED", "EXITED")]
    return 1 if bad else 0


def cmd_down(args: argparse.Namespace) -> int:
    from eva00.ops import supervision

    supervision.down(load_or_exit())
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    from eva00.ops import supervision

    settings = load_or_exit()
    if not supervision.is_running(settings):
        print("supervisord is not running (start it with `make up`)")
        return 3
    print(supervision.format_status(supervision.rpc(settings).supervisor.getAllProcessInfo()))
    return 0


def cmd_backlog(args: argparse.Namespace) -> int:
    import redis

    from eva00.ops.streams_report import backlog_rows

    client = redis.Redis.from_url(load_or_exit().effective_redis_url, socket_timeout=5)
    try:
        rows = backlog_rows(client)
    except redis.ConnectionError as exc:
        print(f"eva00: Redis is not reachable: {exc}", file=sys.stderr)
        return 3
    print(f"{'stream':<24} {'group':<18} {'length':>8} {'pending':>8} {'lag':>8}")
    for row in rows:
        print(f"{row.stream:<24} {row.group:<18} {row.length:>8} {row.pending:>8} {row.lag:>8}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from eva00.config import settings_table

    print("| Variable | Default | Meaning |\n|---|---|---|")
    for name, default, doc in settings_table():
        print(f"| `{name}` | {f'`{default}`' if default else '(unset)'} | {doc} |")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser("up", help="start supervisord and every program")
    up.add_argument("--wait-s", type=float, default=90.0)
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop every program and supervisord").set_defaults(func=cmd_down)
    sub.add_parser("ps", help="state of every supervisord program").set_defaults(func=cmd_ps)
    sub.add_parser("backlog", help="stream lengths and pending entries per group").set_defaults(
        func=cmd_backlog)
