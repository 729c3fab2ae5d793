"""Only runtime/bus.py adds entries to a stream: every other module publishes through Bus, so how a
message becomes a stream entry (its fields, MAXLEN, atomicity) is decided in one place."""

from __future__ import annotations

import re
from pathlib import Path

from eva00.config import ROOT_DIR

# A redis-py call (.xadd(...)) or the command spelled out for Lua or execute_command ('XADD').
_XADD = re.compile(r"\.xadd\s*\(|['\"]XADD['\"]", re.IGNORECASE)
_BUS = ROOT_DIR / "eva00" / "runtime" / "bus.py"
# The simulator plays Procore, not a producer of ours.
_EXEMPT_DIRS = (ROOT_DIR / "eva00" / "simulator",)


def _sources() -> list[Path]:
    found = [*(ROOT_DIR / "eva00").rglob("*.py"), *(ROOT_DIR / "processes").rglob("*.py")]
    return sorted(p for p in found if p != _BUS and not any(p.is_relative_to(d) for d in _EXEMPT_DIRS))


def test_no_module_outside_the_bus_adds_a_stream_entry_itself() -> None:
    offenders = [f"{path.relative_to(ROOT_DIR)}:{number}"
                 for path in _sources()
                 for number, line in enumerate(path.read_text().splitlines(), start=1)
                 if _XADD.search(line)]
    assert offenders == []


def test_the_check_would_see_a_raw_xadd_and_a_lua_one() -> None:
    assert _XADD.search("client.xadd(stream, fields)")
    assert _XADD.search("redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))")
    assert not _XADD.search("forward = XADD downstream + XACK upstream")
    assert _XADD.search(_BUS.read_text()), "the bus itself is where entries are added"
