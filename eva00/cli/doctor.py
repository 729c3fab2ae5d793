"""`eva00 doctor [--json] [--project ID] [--verbose]`: first-run checks, each PASS, WARN or FAIL
with the fix (eva00/ops/doctor.py). Exit 0 when nothing fails, 1 otherwise."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson

from eva00.config import ROOT_DIR

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eva00 doctor", description="Check configuration, PostgreSQL, Redis, Procore access"
        " (token, company, tools, rate limit, clock), the webhook, disk and the data directory.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--project", type=int, metavar="ID",
                        help="the project whose tools are tried (default: the first one listed)")
    parser.add_argument("--verbose", action="store_true", help="show the log lines of the checks")
    return parser


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None,
         dotenv: Path | None = ROOT_DIR / ".env") -> int:
    from eva00.ops.doctor import Context, run_checks
    from eva00.ops.doctor_verdicts import passed

    args = build_parser().parse_args(argv)
    # The report says what went wrong; log lines (pool retries, client warnings) only on request.
    # The level is put back afterwards: a caller in the same process keeps its logging.
    root = logging.getLogger()
    previous_level = root.level
    root.setLevel(logging.DEBUG if args.verbose else logging.CRITICAL + 1)
    ctx = Context(environ=environ, dotenv=dotenv, project_id=args.project)
    try:
        results = run_checks(ctx)
    except KeyboardInterrupt:
        print("eva00 doctor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        ctx.close()
        root.setLevel(previous_level)
    if args.json:
        document = {"passed": passed(results), "checks": [result.to_dict() for result in results]}
        sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
        sys.stdout.flush()
    else:
        for result in results:
            print("\n".join(result.lines()))
        counts = Counter(result.status.value for result in results)
        print(f"\n{counts['PASS']} passed, {counts['WARN']} warned, {counts['FAIL']} failed")
    return 0 if passed(results) else EXIT_FAILED
