"""`eva00 check [--json]`: the replica checker against the running simulator (exit 0: every
figure is 0; 1: some figure is not; 3: a service did not answer). Run it once the system is quiet."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import orjson
import psycopg
import redis
import requests

from eva00.config import Settings


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    from eva00.proof.checker.run import check, simulator_at
    from eva00.runtime.process import redis_client

    parser = argparse.ArgumentParser(prog="eva00 check", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--sim-url", help="the simulator's API base (default: the embedded one)")
    parser.add_argument("--expected-dead-letters", type=int, default=0, metavar="N",
                        help="dead letters caused on purpose, forgiven")
    args = parser.parse_args(argv)
    if settings is None:
        from eva00.config import load_or_exit

        settings = load_or_exit()
    if args.sim_url is None and not settings.embedded_simulator:
        print("eva00 check: the ground truth comes from the simulator; this configuration talks to"
              " Procore (give --sim-url to check against a simulator)", file=sys.stderr)
        return 2
    client = redis_client(settings)
    try:
        sim = simulator_at(args.sim_url or settings.api_base, client_id=settings.client_id,
                           client_secret=settings.client_secret)
        report = check(settings, sim, client, expected_dead_letter_count=args.expected_dead_letters)
    except (requests.RequestException, psycopg.OperationalError, redis.ConnectionError) as exc:
        print(f"eva00 check: a service did not answer: {exc}", file=sys.stderr)
        return 3
    finally:
        client.close()
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report.to_dict()) + b"\n")
    else:
        print(report.table())
    return 0 if report.passed else 1
