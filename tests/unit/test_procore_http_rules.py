"""Pure rules of the send wrapper: the server's rate headers, slowing down before Remaining hits 0,
metric labels and histograms."""

from __future__ import annotations

import pytest

from eva00.procore.http import ServerRate, netloc_of, server_rate, slow_down_s
from eva00.procore.metrics import bucket_label, endpoint_label, histogram_quantile


def test_reset_is_measured_against_the_servers_own_date_not_our_clock() -> None:
    headers = {"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "7",
               "X-Rate-Limit-Reset": "1700000010", "Date": "Tue, 14 Nov 2023 22:13:20 GMT"}
    # our clock is an hour off; the server's Date says 10 s to go
    rate = server_rate(headers, now_s=1_700_000_000.0 + 3600)
    assert rate == ServerRate(100, 7, pytest.approx(10.0))


def test_answers_without_rate_headers_give_no_server_view() -> None:
    assert server_rate({"X-Rate-Limit-Limit": "100"}, 0.0) is None
    assert server_rate({"X-Rate-Limit-Limit": "x", "X-Rate-Limit-Remaining": "1",
                        "X-Rate-Limit-Reset": "5"}, 0.0) is None


@pytest.mark.parametrize(("remaining", "expected"), [
    (50, 0.0),  # plenty left: no slowdown
    (4, 0.0),  # just above the low water mark
    (3, 2.5),  # spread the last ones over the time to reset
    (1, 5.0),
    (0, 10.0),  # nothing left: wait for the reset
])
def test_calls_slow_down_before_remaining_reaches_zero(remaining: int, expected: float) -> None:
    assert slow_down_s(ServerRate(100, remaining, 10.0), low_water=3) == pytest.approx(expected)


def test_endpoint_labels_drop_ids_and_queries() -> None:
    assert endpoint_label("/rest/v1.0/projects/123/rfis/45?x=1") == "/rest/v1.0/projects/{id}/rfis/{id}"
    assert endpoint_label("/rest/v1.1/projects") == "/rest/v1.1/projects"


def test_latency_buckets_and_quantiles() -> None:
    assert bucket_label(3) == "le_10" and bucket_label(10) == "le_10" and bucket_label(11) == "le_25"
    assert bucket_label(10**6) == "le_inf"
    counts = {"le_10": 90, "le_500": 9, "le_2000": 1}
    assert histogram_quantile(counts, 0.5) == 10.0
    assert histogram_quantile(counts, 0.95) == 500.0
    assert histogram_quantile(counts, 1.0) == 2000.0
    assert histogram_quantile({}, 0.95) is None


def test_hosts_compare_with_their_default_ports() -> None:
    assert netloc_of("https://API.procore.com/rest") == "api.procore.com:443"
    assert netloc_of("http://127.0.0.1:8400/x") == "127.0.0.1:8400"
    assert netloc_of("https://api.procore.com.evil.example/x") != netloc_of("https://api.procore.com/")
