"""The one send wrapper every call to Procore goes through; the only layer that retries HTTP.

Each attempt: honour the auth halt and the circuit, take a token from the shared limiter for the
caller's budget class, send with the bearer token and the company header, time and count the
answer, read the server's rate headers, then act on ``errors.classify``:

- 2xx/3xx: return (redirects are never followed here; files.py follows them host by host);
- 401: renew the token once (shared, rotation-safe) and retry once;
- 429, or 503 with Retry-After: pause every process for the server's delay, then retry;
- other 5xx, 408, timeouts: full-jitter exponential backoff, counted by the circuit breaker;
- connection errors: pause every process ``connection_error_pause_s`` and empty the bucket;
- other 4xx: ProcoreRequestFailed (Fatal) at once.

When attempts run out, or a wait would pass the caller's deadline, ProcoreUnavailable (Retryable)
carries the delay. The bearer token goes only where the URL policy allows (urlpolicy.py: the API
and login hosts and EVA00_BEARER_HOSTS), and every connection goes to an address it checked.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from eva00.config import Settings
from eva00.procore.auth import AccessToken, Authenticator
from eva00.procore.circuit import CircuitBreaker
from eva00.procore.errors import (
    Action,
    AuthRejected,
    ProcoreRequestFailed,
    ProcoreUnavailable,
    UnsafeUrl,
    classify,
    error_detail,
    redact_url,
)
from eva00.procore.limiter import BudgetClass, Grant, LimiterTimeout, RateLimiter
from eva00.procore.metrics import Metrics, endpoint_label
from eva00.procore.urlpolicy import UrlPolicy
from eva00.runtime.backoff import capped_backoff_s

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerRate:
    """The server's X-Rate-Limit-* view of the window most at risk."""

    limit: int
    remaining: int
    reset_in_s: float


def server_rate(headers: Mapping[str, str], now_s: float) -> ServerRate | None:
    try:
        limit = int(headers["X-Rate-Limit-Limit"])
        remaining = int(headers["X-Rate-Limit-Remaining"])
        reset_epoch = float(headers["X-Rate-Limit-Reset"])
    except (KeyError, ValueError):
        return None
    # Reset is epoch seconds on the server's clock: measure it against the server's own Date
    server_now = _http_date(headers.get("Date")) or now_s
    return ServerRate(limit, remaining, max(0.0, reset_epoch - server_now))


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def slow_down_s(rate: ServerRate, low_water: int) -> float:
    """How long every process should hold off so that Remaining never reaches 0: spread what is
    left over the time to Reset once it falls to ``low_water``; wait for Reset when nothing is."""
    if rate.remaining > low_water:
        return 0.0
    if rate.remaining <= 0:
        return rate.reset_in_s
    return rate.reset_in_s / (rate.remaining + 1)


class ProcoreClient:
    def __init__(self, settings: Settings, auth: Authenticator, limiter: RateLimiter, *,
                 circuit: CircuitBreaker, metrics: Metrics, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random,
                 max_attempts: int = 6, backoff_base_s: float = 0.5, low_water_fraction: float = 0.03,
                 default_pause_s: float = 60.0, policy: UrlPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or UrlPolicy.from_settings(settings)
        self.auth, self.limiter, self.circuit, self.metrics = auth, limiter, circuit, metrics
        self.session = self.policy.mount(session or requests.Session())
        self.clock, self.sleep, self.monotonic, self.rand = clock, sleep, monotonic, rand
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.low_water_fraction = low_water_fraction
        self.default_pause_s = default_pause_s
        self.last_grant: Grant | None = None  # the limiter's answer to the latest attempt

    # --- the surface ---

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith("/"):
            return self.settings.api_base + path_or_url
        if not self.policy.may_carry_token(path_or_url):
            raise UnsafeUrl(f"refusing to send the Procore token to {redact_url(path_or_url)}")
        return path_or_url

    def get_json(self, path: str, *, budget: BudgetClass | str, params: Mapping[str, Any] | None = None,
                 endpoint: str | None = None, deadline_s: float | None = None,
                 ) -> tuple[Any, requests.Response]:
        response = self.request("GET", path, budget=budget, params=params, endpoint=endpoint,
                                deadline_s=deadline_s)
        try:
            return response.json(), response
        except ValueError:
            raise ProcoreUnavailable(f"{endpoint_label(path)} answered {response.status_code} with a body"
                                     " that is not JSON", delay_s=self.settings.bad_answer_retry_s,
                                     status=response.status_code,
                                     endpoint=endpoint_label(path)) from None

    def request(self, method: str, path_or_url: str, *, budget: BudgetClass | str,
                params: Mapping[str, Any] | None = None, json: Any = None,
                headers: Mapping[str, str] | None = None, endpoint: str | None = None,
                stream: bool = False, deadline_s: float | None = None) -> requests.Response:
        """Send one request (retrying as the class docstring says); ``deadline_s`` bounds the
        total time spent waiting, after which ProcoreUnavailable says how long to wait still."""
        url = self.url(path_or_url)
        budget = BudgetClass(budget)
        label = endpoint or endpoint_label(urlsplit(url).path)
        started = self.monotonic()
        renewed = False
        for attempt in range(1, self.max_attempts + 1):
            remaining = None if deadline_s is None else deadline_s - (self.monotonic() - started)
            token = self._admit(budget, label, remaining)
            response = self._send(method, url, token, budget, label, params, json, headers, stream)
            if response is None:
                continue
            verdict = classify(response.status_code, response.headers, now_s=self.clock())
            if verdict.action is Action.OK:
                self.circuit.success()
                return response
            # Procore's own sentence says why (a tool switched off, a project not permitted).
            detail = error_detail(response.content) if verdict.action is Action.FAIL and not stream else ""
            response.close()
            if verdict.action is Action.REFRESH_AUTH and not renewed:
                self.metrics.record_event("unauthorized_renewal")
                self.auth.after_unauthorized(token)
                renewed = True
            elif verdict.action is Action.REFRESH_AUTH:
                raise AuthRejected(f"{label} answered 401 with a freshly renewed token", error="unauthorized",
                                   status=401)
            elif verdict.action is Action.PAUSE_ALL:
                self._pause_for_server(response, verdict.delay_s, label)
            elif verdict.action is Action.BACKOFF:
                self._back_off(attempt, response.status_code, label)
            else:
                raise ProcoreRequestFailed(f"{method} {label} answered {response.status_code}",
                                           status=response.status_code, endpoint=label,
                                           detail=detail)
        raise ProcoreUnavailable(f"{method} {label} failed {self.max_attempts} times", delay_s=30.0,
                                 endpoint=label)

    # --- one attempt ---

    def _admit(self, budget: BudgetClass, label: str, remaining_s: float | None) -> AccessToken:
        permit = self.circuit.permit()
        if not permit.allowed:
            raise ProcoreUnavailable(f"circuit open: Procore calls held back ({label})",
                                     delay_s=max(permit.wait_s, 0.2), endpoint=label)
        try:
            grant = self.limiter.acquire(budget, timeout_s=remaining_s)
        except LimiterTimeout as exc:
            raise ProcoreUnavailable(f"no rate-limit token in time for {label} ({exc.reason})",
                                     delay_s=max(1.0, self.limiter.paused_for_s()), endpoint=label) from None
        self.last_grant = grant
        self.metrics.record_wait(budget.value, grant.waited_s)
        return self.auth.current()

    def _send(self, method: str, url: str, token: AccessToken, budget: BudgetClass, label: str,
              params: Mapping[str, Any] | None, json: Any, headers: Mapping[str, str] | None,
              stream: bool) -> requests.Response | None:
        sent_headers = {"Authorization": f"Bearer {token.value}",
                        "Procore-Company-Id": str(self.settings.company_id),
                        "Accept": "application/json", **(headers or {})}
        began = self.monotonic()
        try:
            response = self.session.request(method, url, params=params, json=json, headers=sent_headers,
                                            timeout=self.settings.http_timeout_s, stream=stream,
                                            allow_redirects=False)
        except requests.Timeout:
            self.metrics.record_call(budget.value, label, "timeout", (self.monotonic() - began) * 1000)
            self.circuit.failure(f"timeout on {label}")
            return None
        except requests.RequestException as exc:
            elapsed_ms = (self.monotonic() - began) * 1000
            self.metrics.record_call(budget.value, label, "connection_error", elapsed_ms)
            self._connection_lost(label, type(exc).__name__)
            return None
        self.metrics.record_call(budget.value, label, response.status_code, (self.monotonic() - began) * 1000)
        self._observe_rate(response)
        return response

    # --- reactions ---

    def _observe_rate(self, response: requests.Response) -> None:
        rate = server_rate(response.headers, self.clock())
        if rate is None:
            return
        self.limiter.redis.hset(self.limiter.keys.server_view, mapping={
            "limit": rate.limit, "remaining": rate.remaining, "reset_in_s": rate.reset_in_s})
        hold_s = slow_down_s(rate, max(1, round(rate.limit * self.low_water_fraction)))
        if hold_s > 0:
            self.limiter.pause(hold_s, f"server Remaining {rate.remaining} of {rate.limit}")
            self.metrics.record_event("server_slow_down")

    def _pause_for_server(self, response: requests.Response, delay_s: float | None, label: str) -> None:
        if delay_s is None:
            rate = server_rate(response.headers, self.clock())
            delay_s = rate.reset_in_s if rate and rate.reset_in_s > 0 else self.default_pause_s
        log.warning("%s answered %d: every process pauses %.1f s", label, response.status_code, delay_s)
        self.limiter.pause(delay_s, f"{response.status_code} from {label}")
        self.metrics.record_event(f"pause_{response.status_code}")
        if response.status_code >= 500:
            self.circuit.failure(f"{response.status_code} on {label}")

    def _back_off(self, attempt: int, status: int, label: str) -> None:
        self.circuit.failure(f"{status} on {label}")
        delay = capped_backoff_s(attempt, base_s=self.backoff_base_s,
                                 cap_s=self.settings.outage_backoff_cap_s, rand=self.rand)
        log.warning("%s answered %d (attempt %d): retrying in %.2f s", label, status, attempt, delay)
        self.sleep(delay)

    def _connection_lost(self, label: str, kind: str) -> None:
        pause_s = self.settings.connection_error_pause_s
        log.warning("connection to Procore lost on %s (%s): every process pauses %.0f s", label, kind,
                    pause_s)
        self.limiter.pause(pause_s, f"connection error on {label}", reset_bucket=True)
        self.metrics.record_event("pause_connection_error")


def netloc_of(url: str) -> str:
    """host:port of a URL (default ports filled in), the unit the token allow-list compares."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{(parts.hostname or '').lower()}:{port}"
