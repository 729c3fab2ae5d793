"""Procore's answers are sorted into what the caller must do, in one pure function."""

from __future__ import annotations

import pytest

from eva00.errors import Fatal, Retryable
from eva00.procore.errors import (
    Action,
    AuthHalted,
    AuthRejected,
    ProcoreRequestFailed,
    ProcoreUnavailable,
    classify,
    parse_retry_after,
    redact_url,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(("status", "headers", "action", "delay"), [
    (200, {}, Action.OK, None),
    (204, {}, Action.OK, None),
    (302, {}, Action.OK, None),
    (401, {}, Action.REFRESH_AUTH, None),
    (429, {}, Action.PAUSE_ALL, None),
    (429, {"Retry-After": "7"}, Action.PAUSE_ALL, 7.0),
    (503, {"Retry-After": "3"}, Action.PAUSE_ALL, 3.0),
    (503, {}, Action.BACKOFF, None),
    (500, {}, Action.BACKOFF, None),
    (502, {}, Action.BACKOFF, None),
    (408, {}, Action.BACKOFF, None),
    (400, {}, Action.FAIL, None),
    (403, {}, Action.FAIL, None),
    (404, {}, Action.FAIL, None),
    (422, {}, Action.FAIL, None),
])
def test_each_status_maps_to_the_action_the_caller_must_take(
        status: int, headers: dict[str, str], action: Action, delay: float | None) -> None:
    verdict = classify(status, headers, now_s=NOW)
    assert verdict.action is action
    assert verdict.delay_s == delay


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("12", now_s=NOW) == 12.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now_s=NOW) == pytest.approx(10.0)
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now_s=NOW + 100) == 0.0
    assert parse_retry_after("soon", now_s=NOW) is None
    assert parse_retry_after(None, now_s=NOW) is None


def test_urls_in_messages_lose_their_signed_query_strings() -> None:
    url = "https://storage.procore.com/files/abc.pdf?sig=SECRETSIG&expires=99"
    assert redact_url(url) == "https://storage.procore.com/files/abc.pdf"


def test_error_classes_are_the_stage_errors_a_loop_understands() -> None:
    assert isinstance(ProcoreRequestFailed("403", status=403), Fatal)
    assert isinstance(AuthRejected("no", error="invalid_grant"), Fatal)
    unavailable = ProcoreUnavailable("503", delay_s=4.0, status=503)
    assert isinstance(unavailable, Retryable) and unavailable.delay_s == 4.0
    assert isinstance(AuthHalted("halted", delay_s=60.0), Retryable)
