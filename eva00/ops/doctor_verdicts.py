"""The doctor's results and its judgements: pure functions from what a check measured to PASS,
WARN or FAIL with the detail and the fix, so every threshold is tested without a server.

A result prints as one line, ``PASS  name: detail``, and for WARN and FAIL an indented
``fix: ...`` line; ``to_dict`` is its JSON form (`eva00 doctor --json`).
"""

from __future__ import annotations

import email.utils
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from eva00.ops.doctor_probe import Reply

DISK_WARN_MARGIN = 0.05  # WARN when free space is this close above EVA00_DISK_FREE_MIN_RATIO
RATE_LOW_WATER_FRACTION = 0.03  # the client's own slow-down point (eva00/procore/http.py)


class Status(str, Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def lines(self) -> list[str]:
        head = f"{self.status.value}  {self.name}: {self.detail}"
        return [head, f"      fix: {self.fix}"] if self.fix and self.status is not Status.PASS else [head]

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail, "fix": self.fix}


def passed(results: Sequence[CheckResult]) -> bool:
    return all(result.status is not Status.FAIL for result in results)


def loose_modes(modes: Mapping[Path, int]) -> dict[Path, int]:
    """Files or directories that group or other may use (anything past 0600 / 0700)."""
    return {path: mode for path, mode in modes.items() if mode & 0o077}


def judge_disk(free_bytes: int, total_bytes: int, min_ratio: float) -> tuple[Status, str]:
    ratio = free_bytes / total_bytes if total_bytes else 0.0
    detail = (f"{ratio:.0%} free ({free_bytes / 2**30:.1f} GiB of {total_bytes / 2**30:.1f} GiB);"
              f" downloads pause below {min_ratio:.0%}")
    if ratio < min_ratio:
        return Status.FAIL, detail
    return (Status.WARN if ratio < min_ratio + DISK_WARN_MARGIN else Status.PASS), detail


def clock_offset(date_header: str, received_at_s: float, elapsed_s: float) -> tuple[float, float] | None:
    """(server minus host seconds, uncertainty) from one answer's Date (whole seconds, stamped
    somewhere between sending and receiving); None when the header does not parse."""
    try:
        server_s = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return None
    return server_s + 0.5 - (received_at_s - elapsed_s / 2), 0.5 + elapsed_s / 2


def judge_clock(offset_s: float, uncertainty_s: float, *, warn_after_s: float,
                fail_after_s: float) -> tuple[Status, str]:
    """Judged on the part of the offset that is certain (beyond the measurement's uncertainty)."""
    certain_s = max(0.0, abs(offset_s) - uncertainty_s)
    if certain_s == 0.0:
        return Status.PASS, f"this host's clock agrees with the server's Date (±{uncertainty_s:.1f} s)"
    way = "ahead of" if offset_s > 0 else "behind"
    detail = f"the server's Date is {abs(offset_s):.1f} s {way} this host's clock (±{uncertainty_s:.1f} s)"
    if certain_s > fail_after_s:
        return Status.FAIL, detail
    return (Status.WARN if certain_s > warn_after_s else Status.PASS), detail


def judge_rate(headers: Mapping[str, str]) -> tuple[Status, str]:
    try:
        limit, remaining = int(headers["X-Rate-Limit-Limit"]), int(headers["X-Rate-Limit-Remaining"])
    except (KeyError, ValueError):
        return Status.WARN, "Procore sent no readable X-Rate-Limit-Limit/Remaining headers"
    detail = f"X-Rate-Limit-Limit {limit}, X-Rate-Limit-Remaining {remaining}"
    low_water = max(1, round(limit * RATE_LOW_WATER_FRACTION))
    return (Status.WARN if remaining <= low_water else Status.PASS), detail


def judge_tools(project: str, replies: Sequence[tuple[str, Reply]]) -> CheckResult:
    answers = ", ".join(f"{label} {reply.status or 'no answer'}" for label, reply in replies)
    refused = [label for label, reply in replies if reply.status in (403, 404)]
    failed = [label for label, reply in replies if not reply.ok and reply.status not in (403, 404)]
    detail = f"project {project}: {answers}"
    if len(refused) == len(replies):
        return CheckResult("tools", Status.WARN, f"{detail} (no tool answers: tool switched off or no"
                           " permission)", f"add the service account to project {project} (Procore:"
                           " the project's Directory) with read access to its tools")
    if refused:
        return CheckResult("tools", Status.WARN, f"{detail} ({', '.join(refused)}: tool switched off"
                           " or no permission)", "turn the tool on in the project (Project Admin >"
                           " Tools) or give the service account read access to it; until then its"
                           " records are not replicated")
    if failed:
        return CheckResult("tools", Status.WARN, f"{detail} ({', '.join(failed)} did not answer)",
                           "run `eva00 doctor` again later; `eva00 status` shows Procore's errors")
    return CheckResult("tools", Status.PASS, detail)


def judge_company(company_id: int, me: Any, companies: Reply) -> CheckResult:
    who = (me.get("login") or me.get("name") or me.get("id")) if isinstance(me, dict) else None
    prefix = f"the token of {who}" if who else "the token"
    if not companies.ok:
        return CheckResult("token", Status.WARN, f"{prefix} is accepted for company {company_id}, but"
                           f" the companies list did not answer ({companies.problem})",
                           "run `eva00 doctor` again later")
    listed = {int(c["id"]): str(c.get("name") or "") for c in companies.body or []
              if isinstance(c, dict) and str(c.get("id", "")).isdigit()}
    if company_id not in listed:
        known = ", ".join(f"{cid} ({name})" for cid, name in sorted(listed.items())) or "none"
        return CheckResult("token", Status.FAIL, f"company {company_id} is not among this token's"
                           f" companies: {known}", f"set PROCORE_COMPANY_ID to one of: {known}")
    return CheckResult("token", Status.PASS, f"{prefix} is valid for company {company_id}"
                       f" ({listed[company_id]})")


def judge_deliveries(hook: Mapping[str, Any], deliveries: Sequence[Mapping[str, Any]]) -> CheckResult:
    where = f"hook {hook.get('id')} -> {hook.get('destination_url')}"
    if not deliveries:
        return CheckResult("webhook", Status.WARN, f"{where}: no deliveries yet",
                           "change a record in Procore and run `eva00 webhooks status`: a delivery"
                           " should appear within seconds")
    # Procore's outcome: ok | retried | failed | discarded; none yet while a delivery waits.
    outcomes = [str(d.get("outcome") or d.get("status") or "pending") for d in deliveries]
    counts = ", ".join(f"{n} {name}" for name, n in sorted(Counter(outcomes).items()))
    detail = f"{where}: last {len(deliveries)} deliveries {counts}; newest {outcomes[0]}"
    if outcomes[0] not in ("ok", "successful", "pending"):
        return CheckResult("webhook", Status.WARN, detail, "Procore cannot reach the listener: check"
                           " the tunnel (docs/cloudflare-tunnel.md) and `eva00 webhooks status`;"
                           " polling keeps the replica complete meanwhile")
    return CheckResult("webhook", Status.PASS, detail)
