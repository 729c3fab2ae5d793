"""Faults switched on at run time through /_sim/faults: each has a mode, a share of matching
requests it hits, an optional count after which it ends, and an optional path pattern.

API modes: 5xx, 503 (with Retry-After), slow, truncate, malformed_json, wrong_total, reset,
unknown_shape (a 200 JSON answer wrapped as {"results": ...}, a form no published endpoint declares).
Storage modes: ignore_range, wrong_length, etag_change, endless (a body that never ends, without a
Content-Length), drip (the body a few bytes every ``delay_s``) (plus slow, truncate, reset, 5xx, 503
when ``host`` is "storage").
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

API_MODES = frozenset({"5xx", "503", "slow", "truncate", "malformed_json", "wrong_total", "reset",
                       "unknown_shape"})
STORAGE_MODES = frozenset({"ignore_range", "wrong_length", "etag_change", "endless", "drip"})
MODES = API_MODES | STORAGE_MODES


class FaultError(ValueError):
    pass


@dataclass
class Fault:
    id: int
    mode: str
    ratio: float = 1.0
    count: int | None = None  # None: until cleared
    paths: str | None = None
    retry_after_s: float = 1.0
    delay_s: float = 2.0
    host: str = "api"
    hits: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "mode": self.mode, "ratio": self.ratio, "count": self.count,
                "paths": self.paths, "retry_after_s": self.retry_after_s, "delay_s": self.delay_s,
                "host": self.host, "hits": self.hits}


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)
        self._next_id = 1

    def add(self, spec: dict[str, Any]) -> Fault:
        mode = str(spec.get("mode", ""))
        if mode not in MODES:
            raise FaultError(f"mode must be one of {sorted(MODES)}")
        try:
            fault = Fault(0, mode, float(spec.get("ratio", 1.0)),
                          None if spec.get("count") is None else int(spec["count"]),
                          spec.get("paths"), float(spec.get("retry_after_s", 1.0)),
                          float(spec.get("delay_s", 2.0)),
                          str(spec.get("host") or ("storage" if mode in STORAGE_MODES else "api")))
            fault._pattern = re.compile(fault.paths) if fault.paths else None
        except (TypeError, ValueError, re.error) as exc:
            raise FaultError(f"bad fault: {exc}") from None
        if not 0 <= fault.ratio <= 1 or fault.host not in ("api", "storage"):
            raise FaultError("ratio must be within 0..1 and host api or storage")
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def pick(self, host: str, path: str, modes: frozenset[str]) -> Fault | None:
        """The first active fault of these modes that hits this request (and counts the hit)."""
        if not self._faults:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.host != host or fault.mode not in modes:
                    continue
                if fault._pattern is not None and not fault._pattern.search(path):
                    continue
                if self._rng.random() >= fault.ratio:
                    continue
                fault.hits += 1
                if fault.count is not None and fault.hits >= fault.count:
                    self._faults.remove(fault)
                return fault
        return None
