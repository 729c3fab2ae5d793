"""The request ledger and figures: every request to the API and storage hosts, in order.

Control requests (/_sim) are not recorded. The ledger keeps the newest ``capacity`` entries; a
reader pages through it with ``since`` (the last seq it has seen).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any


@dataclass
class Entry:
    seq: int
    t: float
    method: str
    path: str
    query: str
    status: int  # 0: the connection was dropped or reset without an answer
    company_id: str | None
    token_id: str | None
    bytes: int
    host: str  # api | storage
    authorization_present: bool
    limited: bool
    fault: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Ledger:
    def __init__(self, capacity: int = 1_000_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[Entry] = deque(maxlen=capacity)
        self._seq = 0
        self.by_status: Counter[int] = Counter()
        self.by_host: Counter[str] = Counter()
        self.bytes_served = 0
        self.rate_limited = 0
        self.token_leaks = 0
        self.faults_injected = 0

    def record(self, **fields: Any) -> Entry:
        with self._lock:
            self._seq += 1
            entry = Entry(seq=self._seq, **fields)
            self._entries.append(entry)
            self.by_status[entry.status] += 1
            self.by_host[entry.host] += 1
            self.bytes_served += entry.bytes
            self.rate_limited += entry.limited
            self.token_leaks += entry.host == "storage" and entry.authorization_present
            self.faults_injected += entry.fault is not None
            return entry

    def since(self, seq: int, limit: int = 10_000) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            entries = list(self._entries)
        first = entries[0].seq if entries else seq + 1
        start = max(0, seq + 1 - first)
        chosen = [e.to_json() for e in entries[start:start + limit]]
        return chosen, chosen[-1]["seq"] if chosen else seq

    @property
    def total(self) -> int:
        return self._seq

    def figures(self) -> dict[str, Any]:
        with self._lock:
            return {"requests_total": self._seq, "api_requests": self.by_host["api"],
                    "storage_requests": self.by_host["storage"], "file_requests": self.by_host["files"],
                    "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                    "bytes_served": self.bytes_served, "rate_limited": self.rate_limited,
                    "token_leaks": self.token_leaks, "faults_injected": self.faults_injected}
