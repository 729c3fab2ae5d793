"""Procore's rate limits: exact sliding windows per (app, company), reconfigurable at run time.

Each window keeps the timestamps of the requests it counted (a deque), so "N per W seconds" is
checked exactly, never approximated by fixed buckets. Every request to the API host counts, the
refused ones too by default (a client hammering a closed window keeps it closed). The headers
describe the window most at risk: the one with the fewest requests left.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eva00.simulator.options import SimOptions

UNLIMITED = 1_000_000  # what the headers say while limiting is off


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int
    retry_after_s: int = 0
    window: str = ""

    def headers(self) -> list[tuple[str, str]]:
        return [("X-Rate-Limit-Limit", str(self.limit)), ("X-Rate-Limit-Remaining", str(self.remaining)),
                ("X-Rate-Limit-Reset", str(self.reset_epoch))]


@dataclass
class _Counter:
    stamps: deque[float] = field(default_factory=deque)
    peak: int = 0


class RateLimiter:
    def __init__(self, options: SimOptions, clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self.clock = clock
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str, str], _Counter] = {}
        self.refused = 0

    def check(self, key: tuple[str, str], now: float | None = None) -> Decision:
        moment = self.clock() if now is None else now
        windows = self.options.windows()
        if not windows:
            return Decision(True, UNLIMITED, UNLIMITED, int(moment))
        with self._lock:
            counters = []
            for window in windows:
                counter = self._counters.setdefault((*key, window.name), _Counter())
                while counter.stamps and counter.stamps[0] <= moment - window.window_s:
                    counter.stamps.popleft()
                counters.append((window, counter))
            full = [(w, c) for w, c in counters if len(c.stamps) >= w.limit]
            if full:
                return self._refuse(full, counters, moment)
            for _, counter in counters:
                counter.stamps.append(moment)
                counter.peak = max(counter.peak, len(counter.stamps))
            window, counter = min(counters, key=lambda wc: (wc[0].limit - len(wc[1].stamps), wc[0].window_s))
            return Decision(True, window.limit, window.limit - len(counter.stamps),
                            math.ceil(counter.stamps[0] + window.window_s), 0, window.name)

    def _refuse(self, full: list[Any], counters: list[Any], moment: float) -> Decision:
        self.refused += 1
        waits = [c.stamps[len(c.stamps) - w.limit] + w.window_s - moment for w, c in full]
        if self.options.count_refused:
            for _, counter in counters:
                counter.stamps.append(moment)
        window, counter = full[0]
        retry = max(1, math.ceil(max(waits)))
        return Decision(False, window.limit, 0, math.ceil(moment + max(waits)), retry, window.name)

    def figures(self, now: float | None = None) -> list[dict[str, Any]]:
        moment = self.clock() if now is None else now
        windows = {w.name: w for w in self.options.windows()}
        rows = []
        with self._lock:
            for (client, company, name), counter in sorted(self._counters.items()):
                window = windows.get(name)
                if window is None:
                    continue
                used = sum(1 for stamp in counter.stamps if stamp > moment - window.window_s)
                rows.append({"client_id": client, "company_id": company, "window": name,
                             "limit": window.limit, "window_s": window.window_s, "used_now": used,
                             "peak_used": counter.peak})
        return rows

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()
            self.refused = 0
