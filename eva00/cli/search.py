"""`eva00 search "query"`: PostgreSQL full-text search over live records and the text of files.

The search itself is eva00/ops/search.py; this prints one hit a line (or one JSON object a hit)
and exits 0 when something matched, 1 when nothing did.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict

import orjson
import psycopg

from eva00.config import load_or_exit
from eva00.ops.search import format_hit, search


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eva00 search", description=__doc__.splitlines()[0])
    parser.add_argument("query", help='words, "a phrase", -excluded, or')
    parser.add_argument("--limit", type=int, default=20, help="most hits shown (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON object per hit")
    args = parser.parse_args(list(argv or []))
    settings = load_or_exit()
    with psycopg.connect(settings.effective_database_url) as conn:
        hits = search(conn, args.query, limit=args.limit)
    for hit in hits:
        print(orjson.dumps(asdict(hit)).decode() if args.json else format_hit(hit))
    if not hits and not args.json:
        print("no match")
    return 0 if hits else 1
