"""Backoff as a pure function: full jitter under an exponential curve, with a cap.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads retries of many
processes that failed at the same moment, so they do not hit a recovering server together.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def capped_backoff_s(attempt: int, *, base_s: float = 0.1, cap_s: float = 30.0,
                     rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): uniform in [0, min(cap, base*2^n)]."""
    if attempt < 1:
        return 0.0
    ceiling = min(cap_s, base_s * (2 ** min(attempt - 1, 32)))
    return ceiling * rand()
