"""Finding 12 of the security issue, replayed: ``/healthz`` ran a query and a PING per request (an
unauthenticated flood became database load) and the dashboard answered any Host header (a web page
whose DNS name is rebound to 127.0.0.1 could read it).

The listener is the one `build_listener` wires for supervisord; the dashboard server is the one
`eva00 dashboard` serves. Checks are counted on the servers: PINGs in Redis' own command
statistics, connection requests in the listener's own pool.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.ops.dashboard.app import DashboardApp, make_dashboard_server, serve
from eva00.ops.status import StatusReader
from eva00.runtime import db
from eva00.webhooks.server import HEALTH_MAX_AGE_S, Listener, build_listener

FLOOD = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def listener(settings: Settings) -> Iterator[Listener]:
    built = build_listener(settings.replace(webhook_port=_free_port()))
    thread = threading.Thread(target=built.run, daemon=True)
    thread.start()
    yield built
    built.stop()
    thread.join(10)
    built.intake.pool.close()


def _pings(client: redis.Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_ping", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


def _pool_requests(pool: ConnectionPool) -> int:
    return int(pool.get_stats().get("requests_num", 0))


def test_a_flood_of_healthz_requests_costs_at_most_one_check_per_period(
        listener: Listener, redis_client: redis.Redis) -> None:
    url = f"http://127.0.0.1:{listener.port}/healthz"
    # A first request opens the listener's connections (redis-py PINGs a new one once), then the
    # cached answer is left to go stale: the flood below starts with a check of its own.
    assert requests.get(url, timeout=10).status_code == 200
    time.sleep(HEALTH_MAX_AGE_S)
    pings, requests_before = _pings(redis_client), _pool_requests(listener.intake.pool)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as flood:
        answers = list(flood.map(lambda _: requests.get(url, timeout=10), range(FLOOD)))
    elapsed_s = time.monotonic() - started
    assert {answer.status_code for answer in answers} == {200}
    assert all(answer.json() == {"status": {"postgres": True, "redis": True}} for answer in answers)
    # One check when the flood starts, and one more per period it lasted (a loaded machine may
    # stretch it); without the cache this would be one per request.
    allowed = 1 + int(elapsed_s // HEALTH_MAX_AGE_S)
    assert 1 <= _pings(redis_client) - pings <= allowed < FLOOD
    assert _pool_requests(listener.intake.pool) - requests_before <= allowed


@pytest.fixture
def dashboard_port(settings: Settings, redis_client: redis.Redis) -> Iterator[int]:
    pool = db.make_pool(settings, max_size=2, name="test-security-dashboard")
    server = make_dashboard_server(DashboardApp(StatusReader(settings, redis_client, pool)), 0)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(server, stop), daemon=True)
    thread.start()
    yield int(server.server_port)
    stop.set()
    thread.join(5)
    pool.close()


def _raw_get(port: int, host_header: str | None, path: str = "/api/status") -> tuple[int, bytes]:
    """What a browser sends once the attacker's name resolves to 127.0.0.1: its own name as Host."""
    request = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host_header}\r\n" if host_header is not None else "")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall((request + "Connection: close\r\n\r\n").encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("host", ["rebound.attacker.example:{port}", "127.0.0.1.attacker.example:{port}",
                                  "localhost.:{port}", "127.0.0.1:1", None])
@pytest.mark.parametrize("path", ["/api/status", "/"])
def test_a_rebound_page_gets_421_and_nothing_of_the_dashboard(
        dashboard_port: int, host: str | None, path: str) -> None:
    status, body = _raw_get(dashboard_port, host.format(port=dashboard_port) if host else None, path)
    assert status == 421
    assert b"freshness" not in body and b"<html" not in body.lower()


def test_the_dashboard_still_answers_its_own_names(dashboard_port: int) -> None:
    for host in (f"127.0.0.1:{dashboard_port}", f"localhost:{dashboard_port}", f"[::1]:{dashboard_port}"):
        status, body = _raw_get(dashboard_port, host)
        assert status == 200 and b"freshness" in body
