"""The checker's Redis figures: stream entries some group still owes, and dead letters.

A quiet system has acknowledged everything: every group of every eva00 stream has no pending
entry and nothing left undelivered. The dead-letter stream is left out of that figure because its
entries are the dead letters themselves, counted (with the caller's allowances) by
dead_letter_figure. A pipeline group that does not exist yet owes its whole stream, since the
stage creates it reading from the start; the ingest stream's group belongs to the downstream
consumer outside this system, so only a group that exists there is held to account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import psycopg
import redis

from eva00 import keys

Finding = tuple[int, list[str]]
MAX_EXAMPLES = 10
PAGE_ENTRIES = 10_000


def pending_figure(client: redis.Redis) -> Finding:
    total, problems = 0, []
    expected = {stream: group for stream, group in keys.PIPELINE_GROUPS if stream != keys.STREAM_INGEST}
    for stream in _streams(client):
        groups: Any = client.xinfo_groups(stream)
        names = {_text(info["name"]) for info in groups}
        owed = [(_text(info["name"]), int(info["pending"]), _undelivered(client, stream, info))
                for info in groups]
        group = expected.get(stream)
        if group is not None and group not in names:
            owed.append((group + " (missing)", 0, int(client.xlen(stream))))
        for name, pending, undelivered in owed:
            if pending or undelivered:
                total += pending + undelivered
                problems.append(f"{stream} / {name}: {pending} pending, {undelivered} undelivered")
    return total, problems[:MAX_EXAMPLES]


def _streams(client: redis.Redis) -> list[str]:
    """The streams of keys.py and any other eva00 stream present, the dead letters excepted."""
    # SCAN finds every stream under the prefix, those of keys.py among them; one that does not
    # exist owes nothing.
    found = {_text(k) for k in client.scan_iter(match=f"{keys.PREFIX}:*", count=1000, _type="STREAM")}
    return sorted(found - {keys.STREAM_DEAD_LETTERS})


def _undelivered(client: redis.Redis, stream: str, info: dict[Any, Any]) -> int:
    lag = info.get("lag")
    if lag is not None:
        return int(lag)
    # Redis < 7 has no lag: count the entries after the group's last delivered id.
    last = _text(info["last-delivered-id"])
    return sum(1 for _entry in _entries(client, stream, after=None if last == "0-0" else last))


def _entries(client: redis.Redis, stream: str,
             after: str | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    start = "-" if after is None else f"({after}"
    while True:
        page: Any = client.xrange(stream, min=start, max="+", count=PAGE_ENTRIES)
        for entry_id, fields in page:
            yield _text(entry_id), {_text(k): _text(v) for k, v in fields.items()}
        if len(page) < PAGE_ENTRIES:
            return
        start = f"({_text(page[-1][0])}"


# --- dead letters ---

def dead_letter_figure(conn: psycopg.Connection, client: redis.Redis,
                       expected: Callable[[dict[str, Any]], bool] | None, forgiven: int) -> Finding:
    """Dead letters in the table, plus stream entries the table lacks (each dead letter is
    written to both, so counting both would count it twice), minus the expected ones."""
    letters = _table_letters(conn)
    known = {(letter["stream"], letter["message_id"]) for letter in letters}
    letters += [letter for letter in _stream_letters(client)
                if (letter["stream"], letter["message_id"]) not in known]
    unexpected = [letter for letter in letters if expected is None or not expected(letter)]
    count = max(0, len(unexpected) - forgiven)
    return count, [_describe(letter) for letter in unexpected[forgiven:][:MAX_EXAMPLES]]


def _table_letters(conn: psycopg.Connection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT stream, group_name, message_id, fields, error, deliveries"
                        " FROM dead_letters ORDER BY id")
    return [{"origin": "table", "stream": stream, "group_name": group, "message_id": message_id,
             "fields": fields or {}, "error": error or "", "deliveries": deliveries}
            for stream, group, message_id, fields, error, deliveries in rows]


def _stream_letters(client: redis.Redis) -> Iterator[dict[str, Any]]:
    for entry_id, fields in _entries(client, keys.STREAM_DEAD_LETTERS):
        meta = {k: fields.pop(k, "") for k in ("dl_stream", "dl_group", "dl_id", "dl_error", "dl_deliveries")}
        yield {"origin": "stream", "entry_id": entry_id, "stream": meta["dl_stream"],
               "group_name": meta["dl_group"], "message_id": meta["dl_id"], "fields": fields,
               "error": meta["dl_error"],
               "deliveries": int(meta["dl_deliveries"]) if meta["dl_deliveries"].isdigit() else None}


def _describe(letter: dict[str, Any]) -> str:
    fields = orjson.dumps(letter["fields"]).decode()[:120]
    return (f"{letter['stream']} {letter['message_id']} ({letter['origin']}, "
            f"{letter['deliveries']} deliveries): {str(letter['error'])[:160]} {fields}")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
