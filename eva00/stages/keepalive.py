"""The keepalive loop: keeps the OAuth grant alive while nothing else calls Procore.

Refresh tokens expire after long inactivity, so in authorization-code mode the token is renewed
every ``interval_s`` (12 h) counted from the last renewal by any process, and ahead of the access
token's expiry. In client-credentials mode each interval checks that a token can still be
obtained. Renewal goes through Authenticator, so it takes the same lease as every other process
and can never race a sync process into a double refresh. A halted grant is not touched (that
would be a storm); the loop only waits for `eva00 auth login` to lift the halt.

Delivery guarantee: none needed; a missed step is caught up at the next one, since each step
decides from the renewal time stored in PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from eva00.procore.auth import Authenticator
from eva00.procore.errors import AuthHalted, AuthRejected, ProcoreUnavailable
from eva00.procore.tokens import CLIENT_CREDENTIALS
from eva00.runtime.backoff import capped_backoff_s

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepResult:
    renewed: bool
    sleep_s: float
    detail: str


class Keepalive:
    def __init__(self, auth: Authenticator, *, interval_s: float, ahead_s: float = 300.0,
                 max_sleep_s: float = 60.0, failure_cap_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.auth = auth
        self.interval_s = interval_s
        self.ahead_s = ahead_s
        self.max_sleep_s = max_sleep_s
        self.failure_cap_s = failure_cap_s
        self.clock = clock
        self.failures = 0

    def due_at(self) -> tuple[float, str]:
        """When the next renewal is due (epoch s) and why."""
        row = self.auth.status()
        if row is None or row.last_refreshed_at is None:
            return self.clock(), "no token stored yet"
        by_interval = row.last_refreshed_at + self.interval_s
        by_expiry = (row.access_expires_at or 0.0) - self.ahead_s
        if by_expiry < by_interval:
            return by_expiry, "access token expires soon"
        verb = "check" if self.auth.mode == CLIENT_CREDENTIALS else "refresh"
        return by_interval, f"{verb} interval elapsed"

    def step(self) -> StepResult:
        if self.auth.halted_reason() is not None:
            return StepResult(False, self.max_sleep_s, "halted: waiting for `eva00 auth login`")
        due, why = self.due_at()
        now = self.clock()
        if now < due:
            return StepResult(False, min(self.max_sleep_s, due - now), "not due")
        row = self.auth.status()
        try:
            token = self.auth.renew(stale_generation=row.generation if row else None)
        except AuthHalted as exc:
            return StepResult(False, self.max_sleep_s, str(exc))
        except (ProcoreUnavailable, AuthRejected) as exc:
            self.failures += 1
            wait = capped_backoff_s(self.failures, base_s=1.0, cap_s=self.failure_cap_s) + 1.0
            log.warning("keepalive: renewal failed (%s); next try in %.0f s", exc, wait)
            return StepResult(False, min(wait, self.max_sleep_s), f"failed: {exc}")
        self.failures = 0
        log.info("keepalive: renewed (%s), generation %d", why, token.generation)
        return StepResult(True, min(self.max_sleep_s, max(0.05, self.interval_s)), why)

    def run(self, stop: threading.Event) -> None:
        log.info("keepalive: every %.0f s, %.0f s ahead of expiry (%s)", self.interval_s, self.ahead_s,
                 self.auth.mode)
        while not stop.is_set():
            result = self.step()
            stop.wait(result.sleep_s)
