"""Second-precision UTC timestamps as Procore writes them, and their parsing."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(epoch)))


def today_epoch(now: float | None = None) -> int:
    current = time.time() if now is None else now
    return int(current) - int(current) % 86400


def parse_instant(text: str, *, end_of_day: bool = False) -> int:
    """ISO-8601 date or date-time -> epoch seconds; a bare date is its first (or last) second."""
    value = text.strip()
    if len(value) == 10:
        parsed = date.fromisoformat(value)
        start = datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
        return int(start.timestamp()) + (86399 if end_of_day else 0)
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value.replace(" ", "+") if "T" in value else value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse_day(text: str) -> date:
    return date.fromisoformat(text.strip())


def days_between(first: date, last: date) -> int:
    return (last - first).days


def add_days(value: date, days: int) -> date:
    return value + timedelta(days=days)
