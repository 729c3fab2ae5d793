"""Procore's answers sorted by what the caller must do, decided in this one place.

``classify`` is pure: the send wrapper (http.py) acts on its verdict (retry after the server's
delay, back off, refresh the token once, or fail), and raises the exceptions below, which are the
stage errors of eva00/errors.py so a stage knows what to do with its message. No message carries
a token, an Authorization header or a signed URL's query string.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

from eva00.errors import Fatal, Retryable, Unreadable


class Action(str, Enum):
    OK = "ok"
    REFRESH_AUTH = "refresh_auth"  # 401: refresh the token once, then retry once
    PAUSE_ALL = "pause_all"  # 429, or 503 with Retry-After: every process waits, then retry
    BACKOFF = "backoff"  # other 5xx, 408: exponential backoff with full jitter, then retry
    FAIL = "fail"  # other 4xx: this request cannot succeed (403 forbidden project, 404)


@dataclass(frozen=True)
class Verdict:
    action: Action
    delay_s: float | None = None  # the server's own delay (Retry-After), if it gave one


RETRY_STATUSES = frozenset({408, 425})


def classify(status: int, headers: Mapping[str, str], *, now_s: float) -> Verdict:
    if status < 400:
        return Verdict(Action.OK)
    if status == 401:
        return Verdict(Action.REFRESH_AUTH)
    retry_after = parse_retry_after(headers.get("Retry-After"), now_s=now_s)
    if status == 429 or (status >= 500 and retry_after is not None):
        return Verdict(Action.PAUSE_ALL, retry_after)
    if status >= 500 or status in RETRY_STATUSES:
        return Verdict(Action.BACKOFF)
    return Verdict(Action.FAIL)


def parse_retry_after(value: str | None, *, now_s: float) -> float | None:
    """Retry-After as delta seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_s)


def redact_url(url: str) -> str:
    """scheme://host/path only: query strings of file URLs carry signatures."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


class ProcoreError(Exception):
    """Mixin carrying what was called and what came back (never secrets)."""

    def __init__(self, message: str, *, status: int | None = None, endpoint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.endpoint = endpoint


class ProcoreRequestFailed(ProcoreError, Fatal):
    """4xx other than 401/429: retrying cannot help (forbidden project, not found, bad request)."""


class ProcoreUnavailable(ProcoreError, Retryable):
    """5xx, timeouts, connection errors, an open circuit or a pause: try again after delay_s."""

    def __init__(self, message: str, *, delay_s: float, status: int | None = None,
                 endpoint: str = "") -> None:
        ProcoreError.__init__(self, message, status=status, endpoint=endpoint)
        self.delay_s = delay_s


class AuthHalted(ProcoreUnavailable):
    """Procore must not be called until an operator re-authorises (`eva00 auth login`)."""


class AuthUnavailable(ProcoreUnavailable):
    """The token endpoint failed transiently (5xx, timeout, connection error)."""


class AuthRejected(ProcoreError, Fatal):
    """The token endpoint refused the grant (invalid_grant, invalid_client)."""

    def __init__(self, message: str, *, error: str, status: int | None = None) -> None:
        super().__init__(message, status=status, endpoint="oauth/token")
        self.error = error


class UnsafeUrl(ProcoreError, Fatal):
    """A URL the client refuses to call with the bearer token (foreign host) or at all."""


class UnexpectedShape(ProcoreError, Unreadable):
    """A 2xx answer whose shape the client cannot read (eva00/procore/shapes.py): ``sample`` is a
    short excerpt of the body, for the one sync_log row that records it."""

    def __init__(self, message: str, *, endpoint: str, sample: str) -> None:
        super().__init__(message, endpoint=endpoint)
        self.sample = sample
