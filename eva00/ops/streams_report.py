"""Stream backlogs per consumer group: what `eva00 backlog`, `make status` and the dashboard show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from eva00 import keys


@dataclass(frozen=True)
class BacklogRow:
    stream: str
    group: str
    length: int
    pending: int  # delivered to a consumer, not yet acknowledged
    lag: int  # never delivered to this group (-1: Redis cannot tell, pre-7.0)


def backlog_rows(client: redis.Redis) -> list[BacklogRow]:
    rows = []
    for stream, group in keys.PIPELINE_GROUPS:
        length = int(client.xlen(stream))
        groups: Any = client.xinfo_groups(stream) if length or client.exists(stream) else []
        info = next((g for g in groups if _text(g["name"]) == group), None)
        if info is None:
            rows.append(BacklogRow(stream, group, length, 0, length))
            continue
        lag = info.get("lag")
        rows.append(BacklogRow(stream, group, length, int(info["pending"]),
                               int(lag) if lag is not None else _lag(client, stream, info)))
    return rows


def _lag(client: redis.Redis, stream: str, info: dict[str, Any]) -> int:
    """Entries after the group's last delivered id (Redis 6.2 has no `lag` field)."""
    last = _text(info["last-delivered-id"])
    ms, _, seq = last.partition("-")
    after = f"({ms}-{seq}" if last != "0-0" else "-"
    entries: Any = client.xrange(stream, min=after, max="+", count=100_000)
    return len(entries)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
