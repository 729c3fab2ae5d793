"""Rate limits over real HTTP: sliding windows, headers on every answer, 429 with Retry-After or a
dropped connection, every request counting, run-time reconfiguration and the figures."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from eva00.simulator.testing import SimHandle


def call(sim: SimHandle, headers: dict[str, str], path: str = "/rest/v1.0/me") -> requests.Response:
    return requests.get(sim.api_base + path, headers=headers, timeout=30)


def test_every_answer_carries_the_rate_limit_headers(sim_factory: Any) -> None:
    limited = sim_factory(rate_limit="50/60", spike="20/10")
    headers = limited.headers()
    for path in ("/rest/v1.0/me", "/rest/v1.0/nowhere", "/rest/v1.0/projects/1/rfis"):
        answer = call(limited, headers, path)
        assert {"X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"} <= set(answer.headers)
    bad = requests.get(limited.api_base + "/rest/v1.0/me", headers={"Authorization": "Bearer x"}, timeout=30)
    assert bad.status_code == 401 and "X-Rate-Limit-Remaining" in bad.headers


def test_remaining_counts_down_in_the_window_most_at_risk(sim_factory: Any) -> None:
    limited = sim_factory(rate_limit="50/60", spike="5/10")
    headers = limited.headers()
    seen = [call(limited, headers) for _ in range(3)]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in seen] == ["4", "3", "2"]
    assert seen[0].headers["X-Rate-Limit-Limit"] == "5"
    assert int(seen[0].headers["X-Rate-Limit-Reset"]) >= int(time.time())


def test_over_the_limit_answers_429_with_retry_after_and_failed_requests_count(sim_factory: Any) -> None:
    limited = sim_factory(rate_limit="4/3", spike="off")
    headers = limited.headers()
    statuses = [call(limited, headers, "/rest/v1.0/nowhere").status_code for _ in range(4)]
    assert statuses == [404] * 4
    refused = call(limited, headers)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 3
    assert (
        refused.headers["X-Rate-Limit-Remaining"] == "0" and "text/plain" in refused.headers["Content-Type"]
    )
    time.sleep(3.2)
    assert call(limited, headers).status_code == 200
    stats = limited.stats()
    assert stats["violations"] == 1 and stats["rate_limited"] == 1
    # in arrival order (a request is recorded once answered, which may be after the next one's)
    arrivals = sorted(limited.ledger(), key=lambda e: e["t"])
    assert [e["limited"] for e in arrivals][-2:] == [True, False]


def test_over_the_limit_the_connection_can_be_dropped_instead(sim_factory: Any) -> None:
    limited = sim_factory(rate_limit="2/30", spike="off", drop_connection_ratio=1.0)
    headers = limited.headers()
    assert [call(limited, headers).status_code for _ in range(2)] == [200, 200]
    with pytest.raises(requests.exceptions.ConnectionError):
        call(limited, headers)
    arrivals = sorted(limited.ledger(), key=lambda e: e["t"])
    assert [e["status"] for e in arrivals][-3:] == [200, 200, 0] and limited.stats()["rate_limited"] == 1


def test_the_spike_window_limits_bursts_under_the_long_window(sim_factory: Any) -> None:
    limited = sim_factory(rate_limit="100/60", spike="3/2")
    headers = limited.headers()
    statuses = [call(limited, headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_an_hourly_window_can_be_added(sim_factory: Any) -> None:
    limited = sim_factory(rate_limit="off", spike="off")
    limited.configure(hourly=2)
    headers = limited.headers()
    assert [call(limited, headers).status_code for _ in range(3)] == [200, 200, 429]


def test_windows_change_at_run_time_and_control_calls_never_count(sim: SimHandle) -> None:
    headers = sim.headers()
    assert call(sim, headers).headers["X-Rate-Limit-Limit"] == "1000000"
    sim.configure(rate_limit="2/60", spike="off")
    for _ in range(20):
        sim.stats()
    assert [call(sim, headers).status_code for _ in range(3)] == [200, 200, 429]
    sim.configure(rate_limit="off", spike="off")
    assert call(sim, headers).status_code == 200
    assert all(not e["path"].startswith("/_sim") for e in sim.ledger())


def test_limits_apply_per_app_and_company(sim_factory: Any) -> None:
    limited = sim_factory(rate_limit="2/60", spike="off", lenient=True)
    headers = limited.headers()
    other_company = {**headers, "Procore-Company-Id": "999"}
    assert [call(limited, headers).status_code for _ in range(2)] == [200, 200]
    assert call(limited, other_company).status_code == 403
    assert call(limited, headers).status_code == 429
    windows = {w["company_id"]: w for w in limited.stats()["windows"]}
    assert windows["999"]["used_now"] == 1 and windows[str(limited.company_id)]["peak_used"] == 2
