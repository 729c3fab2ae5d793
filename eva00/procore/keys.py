"""The Procore client's Redis keys, one commented name each, under one prefix.

The default prefix is eva00/keys.py's PREFIX, so the production names sit beside every other
key of the project; this module is the only place they are spelled. Tests and benchmarks pass
their own prefix, so several limiters can share one Redis without seeing each other. Nothing
here is durable: losing any key costs at most one extra token call or a few requests held back.
"""

from __future__ import annotations

from dataclasses import dataclass

from eva00 import keys


@dataclass(frozen=True)
class ProcoreKeys:
    prefix: str = keys.PREFIX

    # --- OAuth ---
    @property
    def oauth_access(self) -> str:
        """The shared access token: JSON {token, expires_at, generation}, TTL = its lifetime."""
        return f"{self.prefix}:oauth:access"

    @property
    def oauth_refresh_lock(self) -> str:
        """Lease (SET NX PX, value = owner id) of the one process allowed to call the token URL."""
        return f"{self.prefix}:oauth:refresh-lock"

    @property
    def oauth_halted(self) -> str:
        """Set while Procore must not be called (refresh token or credentials rejected): the reason."""
        return f"{self.prefix}:oauth:halted"

    # --- rate limiting ---
    @property
    def rate_bucket(self) -> str:
        """Hash {tokens, ts_us}: the token bucket, on Redis server time."""
        return f"{self.prefix}:rate:bucket"

    @property
    def rate_window(self) -> str:
        """Sorted set of grants (score = server time in us) within the sliding window."""
        return f"{self.prefix}:rate:window"

    @property
    def rate_waiting(self) -> str:
        """Sorted set "class|requester" -> expiry (us): requests waiting for a token, by class."""
        return f"{self.prefix}:rate:waiting"

    @property
    def rate_seq(self) -> str:
        """Counter making window members unique."""
        return f"{self.prefix}:rate:seq"

    def rate_used(self, budget_class: str) -> str:
        """Sorted set of one class's grants within the budget window."""
        return f"{self.prefix}:rate:used:{budget_class}"

    @property
    def pause_until(self) -> str:
        """Server time (us) until which no process may call Procore (429, Retry-After, conn error)."""
        return f"{self.prefix}:rate:pause-until"

    @property
    def pause_reason(self) -> str:
        """Why the current pause was set (status page), with the same expiry as the pause."""
        return f"{self.prefix}:rate:pause-reason"

    @property
    def server_view(self) -> str:
        """Hash: the last X-Rate-Limit-Limit/Remaining/Reset seen, for the dashboard."""
        return f"{self.prefix}:rate:server"

    # --- circuit breaker ---
    @property
    def circuit(self) -> str:
        """Hash {state, failures, open_until_us, cooldown_us}: the shared 5xx circuit breaker."""
        return f"{self.prefix}:procore:circuit"

    @property
    def circuit_probe(self) -> str:
        """Lease of the one request probing a half-open circuit."""
        return f"{self.prefix}:procore:circuit-probe"

    # --- metrics ---
    @property
    def metrics_calls(self) -> str:
        """Hash "class|endpoint|status" -> count of HTTP calls to Procore."""
        return f"{self.prefix}:metrics:procore:calls"

    @property
    def metrics_duration_ms(self) -> str:
        """Hash "class|endpoint|status" -> total milliseconds of those calls."""
        return f"{self.prefix}:metrics:procore:duration-ms"

    @property
    def metrics_latency_hist(self) -> str:
        """Hash "class|endpoint|le_MS" -> count of calls at most MS long (cumulative buckets)."""
        return f"{self.prefix}:metrics:procore:latency-hist"

    @property
    def metrics_wait_hist(self) -> str:
        """Hash "class|le_MS" -> count of limiter waits at most MS long (cumulative buckets)."""
        return f"{self.prefix}:metrics:procore:token-wait-hist"

    @property
    def metrics_events(self) -> str:
        """Hash event -> count (pauses, refreshes, circuit transitions, 401 recoveries)."""
        return f"{self.prefix}:metrics:procore:events"


DEFAULT_KEYS = ProcoreKeys()


def as_text(value: bytes | str) -> str:
    """A Redis reply value as text (clients may decode replies or not)."""
    return value.decode() if isinstance(value, bytes) else value
