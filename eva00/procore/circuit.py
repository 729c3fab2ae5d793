"""A circuit breaker shared by every process through Redis, for Procore's 5xx answers.

# CLOSED -> OPEN       after ``threshold`` consecutive failures (any process); critical alert
# OPEN -> probing      when the cooldown ends: one request at a time (a lease) is let through
# probing -> CLOSED    the probe (or any request) succeeds; the alert is resolved
# probing -> OPEN      the probe fails: the cooldown doubles, up to ``max_cooldown_s``

While open, callers get ProcoreUnavailable with the time left, without calling Procore.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from psycopg_pool import ConnectionPool

from eva00.procore.keys import DEFAULT_KEYS, ProcoreKeys, as_text
from eva00.runtime import alerts

ALERT_CIRCUIT = "procore-circuit-open"
US_PER_S = 1_000_000

_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then return {1, 0, 0} end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if now < open_until then return {0, open_until - now, 0} end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[1]) then return {1, 0, 1} end
return {0, 200000, 0}
"""

_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('PEXPIRE', KEYS[1], 86400000)
if redis.call('HGET', KEYS[1], 'state') == 'open' then
  if redis.call('GET', KEYS[2]) ~= ARGV[4] then return 'open' end
  local cooldown = math.min(tonumber(redis.call('HGET', KEYS[1], 'cooldown')) * 2, tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'cooldown', cooldown, 'open_until', now + cooldown)
  redis.call('DEL', KEYS[2])
  return 'reopened'
end
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'cooldown', ARGV[2], 'open_until', now + tonumber(ARGV[2]))
  return 'opened'
end
return 'closed'
"""

_SUCCESS = """
local was_open = redis.call('HGET', KEYS[1], 'state') == 'open'
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if was_open then return 1 end
return 0
"""


class AlertSink(Protocol):
    def raise_alert(self, key: str, severity: str, message: str, details: dict[str, Any]) -> None: ...

    def resolve(self, key: str) -> None: ...


class PgAlerts:
    """Alerts as rows of the alerts table, each in its own transaction."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def raise_alert(self, key: str, severity: str, message: str, details: dict[str, Any]) -> None:
        with self.pool.connection() as conn:
            alerts.raise_alert(conn, key, severity, message, details)

    def resolve(self, key: str) -> None:
        with self.pool.connection() as conn:
            alerts.resolve_alert(conn, key)


@dataclass(frozen=True)
class Permit:
    allowed: bool
    wait_s: float
    probe: bool


class CircuitBreaker:
    def __init__(self, client: redis.Redis, alert_sink: AlertSink | None, *,
                 keys: ProcoreKeys = DEFAULT_KEYS, threshold: int = 5, cooldown_s: float = 10.0,
                 max_cooldown_s: float = 300.0, probe_lease_s: float = 120.0) -> None:
        self.redis = client
        self.alerts = alert_sink
        self.keys = keys
        self.threshold = threshold
        self.cooldown_s, self.max_cooldown_s, self.probe_lease_s = cooldown_s, max_cooldown_s, probe_lease_s
        self.owner = uuid.uuid4().hex
        self._check = client.register_script(_CHECK)
        self._failure = client.register_script(_FAILURE)
        self._success = client.register_script(_SUCCESS)

    def permit(self) -> Permit:
        allowed, wait_us, probe = self._check(keys=[self.keys.circuit, self.keys.circuit_probe],
                                              args=[round(self.probe_lease_s * 1000), self.owner])
        return Permit(bool(allowed), int(wait_us) / US_PER_S, bool(probe))

    def failure(self, detail: str) -> str:
        """Count one failure; returns the transition (closed | opened | open | reopened)."""
        result = as_text(self._failure(
            keys=[self.keys.circuit, self.keys.circuit_probe],
            args=[self.threshold, round(self.cooldown_s * US_PER_S), round(self.max_cooldown_s * US_PER_S),
                  self.owner]))
        if result == "opened" and self.alerts is not None:
            self.alerts.raise_alert(
                ALERT_CIRCUIT, alerts.Severity.CRITICAL.value,
                f"Procore failed {self.threshold} times in a row ({detail}); calls are held back and"
                " one request at a time probes until it answers again.", {"last_failure": detail})
        return result

    def success(self) -> bool:
        """A good answer: closes the circuit; True if it was open."""
        closed = bool(self._success(keys=[self.keys.circuit, self.keys.circuit_probe], args=[self.owner]))
        if closed and self.alerts is not None:
            self.alerts.resolve(ALERT_CIRCUIT)
        return closed

    def state(self) -> str:
        raw = self.redis.hget(self.keys.circuit, "state")
        return as_text(raw) if raw is not None else "closed"
