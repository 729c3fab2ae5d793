"""The checker's rate-limit figure: what the simulator refused, and the same recomputed from its
request ledger, so a bug in the simulator's limiter cannot hide a violation.

The recomputation slides the window over every API request (OAuth excepted, as the server does)
per company and per authenticated/anonymous caller, and counts each request that was beyond the
limit within the window ending at it, which is what the simulator refuses when refused requests
count too (its default). Ledger times are taken when an answer is sent, not when the request
arrives, so slow answers can bunch; that is why only the long `rate` window (100 per 60 s against
our own cap of 95) is recomputed by default, while the short spike window is judged by the
simulator's own refusals.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

Finding = tuple[int, list[str]]
MAX_EXAMPLES = 10


def rate_limit_figure(stats: dict[str, Any], ledger: list[dict[str, Any]],
                      rate_limit: tuple[int, float] | None) -> Finding:
    refused = int(stats.get("violations", 0))
    limited = sum(1 for entry in ledger if entry.get("limited"))
    window = rate_limit or configured_window(stats)
    excess, examples = recompute(ledger, *window) if window else (0, [])
    count = max(refused, limited, excess)
    if count == 0:
        return 0, []
    summary = f"simulator refused {refused}, ledger marks {limited} limited"
    if window:
        summary += f", {excess} beyond {window[0]} per {window[1]:g} s recomputed from the ledger"
    return count, [summary, *examples]


def configured_window(stats: dict[str, Any]) -> tuple[int, float] | None:
    """The simulator's `rate` window, as its stats describe it (absent while rate limits are off)."""
    for row in stats.get("windows", []):
        if row.get("window") == "rate":
            return int(row["limit"]), float(row["window_s"])
    return None


def recompute(ledger: list[dict[str, Any]], limit: int, window_s: float) -> Finding:
    callers: dict[tuple[str, bool], list[dict[str, Any]]] = defaultdict(list)
    for entry in ledger:
        if entry.get("host") == "api" and not str(entry.get("path", "")).startswith("/oauth"):
            callers[(str(entry.get("company_id")), entry.get("token_id") is not None)].append(entry)
    excess = 0
    examples: list[str] = []
    for (company, _authenticated), entries in sorted(callers.items()):
        entries.sort(key=lambda e: (e["t"], e["seq"]))
        first = 0
        for index, entry in enumerate(entries):
            while entries[first]["t"] <= entry["t"] - window_s:
                first += 1
            in_window = index - first + 1
            if in_window > limit:
                excess += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(f"company {company}: request {entry['seq']} ({entry['path']}) was "
                                    f"number {in_window} in the {window_s:g} s up to {_iso(entry['t'])}")
    return excess, examples


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
