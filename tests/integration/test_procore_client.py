"""The send wrapper against the simulator: 429, the server's headers, 503, 5xx backoff, the
circuit breaker, connection resets, failures that must not be retried, metrics, paging and the
endpoint registry, and file downloads that never leak the token."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.procore import ProcoreClient, build_client
from eva00.procore.circuit import ALERT_CIRCUIT
from eva00.procore.endpoints import ENDPOINTS, EndpointSpec, Envelope, Scope, endpoint_for
from eva00.procore.errors import ProcoreRequestFailed, ProcoreUnavailable, UnsafeUrl
from eva00.procore.limiter import LimiterConfig
from eva00.procore.paging import Page, page_params, parse_page
from eva00.procore.transfer import LinkUnusable, Transfer
from eva00.procore.urlpolicy import UrlPolicy
from eva00.replica.filestore import FileStore
from eva00.simulator.testing import SimHandle
from tests.integration.test_procore_auth import sim_settings

LOOSE = LimiterConfig(burst=50, refill_per_s=100.0, window_max=1000, window_s=2.0, budget_window_s=2.0,
                      reserve_slots=1, marker_ttl_s=0.6, max_sleep_s=0.2)


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as opened:
        yield opened


def _client(settings: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool,
            limiter: LimiterConfig = LOOSE, **options: object) -> ProcoreClient:
    client = build_client(sim_settings(settings, sim), redis_client, pool, limiter_config=limiter,
                          **options)  # type: ignore[arg-type]
    client.backoff_base_s = 0.05
    return client


def _statuses(sim: SimHandle, path: str) -> list[int]:
    return [int(e["status"]) for e in sim.ledger() if e["path"] == path]  # type: ignore[call-overload]


ME = "/rest/v1.0/me"


def test_a_429_pauses_every_process_until_the_server_allows_again(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(rate_limit="3/1", spike="off")
    client = _client(settings, sim, redis_client, pool)
    other = _client(settings, sim, redis_client, pool)
    headers = {**sim.headers(), "Accept": "application/json"}
    for _ in range(3):  # another app of the same company used the window up
        requests.get(sim.api_base + ME, headers=headers, timeout=10)
    started = time.monotonic()
    client.get_json(ME, budget="scheduled")
    assert time.monotonic() - started >= 0.5
    assert other.limiter.paused_for_s() == 0.0  # the shared pause ended for every process at once
    statuses = _statuses(sim, ME)
    assert statuses == [200, 200, 200, 429, 200]
    assert client.metrics.events()["pause_429"] == 1


def test_the_servers_remaining_count_slows_every_process_before_it_reaches_zero(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(rate_limit="8/2", spike="off")
    client = _client(settings, sim, redis_client, pool)
    client.low_water_fraction = 0.25  # slow down at 2 left
    for _ in range(12):
        client.get_json(ME, budget="scheduled")
    assert sim.stats()["violations"] == 0
    assert client.metrics.events()["server_slow_down"] >= 1


def test_a_503_with_retry_after_pauses_for_the_servers_delay_then_succeeds(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle) -> None:
    client = _client(settings, sim, redis_client, pool)
    sim.set_faults("503", count=1, retry_after_s=1)
    started = time.monotonic()
    client.get_json(ME, budget="webhook")
    assert time.monotonic() - started >= 0.9
    assert _statuses(sim, ME) == [503, 200]


def test_5xx_answers_are_retried_with_backoff_in_this_one_layer(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle) -> None:
    client = _client(settings, sim, redis_client, pool)
    sim.set_faults("5xx", count=2)
    client.get_json(ME, budget="scheduled")
    statuses = _statuses(sim, ME)
    assert statuses[-1] == 200 and len(statuses) == 3 and all(s >= 500 for s in statuses[:2])
    assert client.circuit.state() == "closed"


def test_repeated_5xx_open_the_circuit_with_a_critical_alert_and_one_probe_closes_it(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, database_url: str,
        sim: SimHandle) -> None:
    client = _client(settings, sim, redis_client, pool, circuit_threshold=3, circuit_cooldown_s=0.5)
    sim.set_faults("5xx")
    with pytest.raises(ProcoreUnavailable, match="circuit open"):
        client.get_json(ME, budget="scheduled")
    assert len(_statuses(sim, ME)) == 3 and client.circuit.state() == "open"
    # while open, nothing reaches Procore
    with pytest.raises(ProcoreUnavailable, match="circuit open"):
        client.get_json(ME, budget="webhook")
    assert len(_statuses(sim, ME)) == 3
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT severity, status FROM alerts WHERE alert_key = %s",
                            (ALERT_CIRCUIT,)).fetchone() == ("critical", "open")
    sim.clear_faults()
    time.sleep(0.6)
    client.get_json(ME, budget="scheduled")  # the probe
    assert client.circuit.state() == "closed"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT status FROM alerts WHERE alert_key = %s",
                            (ALERT_CIRCUIT,)).fetchone() == ("resolved",)


def test_a_connection_reset_pauses_every_process_and_empties_the_bucket(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle) -> None:
    # the settings fixture pauses 1 s; a slow refill keeps "refilled since" far below a burst
    client = _client(settings, sim, redis_client, pool, limiter=dataclasses.replace(LOOSE, refill_per_s=5.0))
    sim.set_faults("reset", count=1)
    started = time.monotonic()
    client.get_json(ME, budget="scheduled")
    assert time.monotonic() - started >= 1.0
    assert _statuses(sim, ME) == [0, 200]
    assert client.metrics.events()["pause_connection_error"] == 1
    # the bucket restarted empty: the next calls come at the refill pace, not as a burst. It holds
    # at most what refilled since the pause ended (a busy machine may call late), far from a burst.
    bucket = redis_client.hgetall(client.limiter.keys.rate_bucket)
    since_pause_s = time.monotonic() - started - 1.0
    refilled = client.limiter.config.refill_per_s * since_pause_s
    assert float(bucket[b"tokens"]) < max(1.0, refilled) < client.limiter.config.burst - 1


def test_a_forbidden_project_fails_at_once_without_retries(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle) -> None:
    client = _client(settings, sim, redis_client, pool)
    projects, _ = client.get_json("/rest/v1.1/projects", budget="scheduled",
                                  params={"company_id": sim.company_id})
    project_id = projects[0]["id"]
    sim.forbid_project(project_id)
    path = f"/rest/v1.0/projects/{project_id}/rfis"
    with pytest.raises(ProcoreRequestFailed) as failed:
        client.get_json(path, budget="scheduled")
    assert failed.value.status == 403 and _statuses(sim, path) == [403]
    with pytest.raises(ProcoreRequestFailed) as missing:
        client.get_json("/rest/v1.0/projects/999999/rfis", budget="scheduled")
    assert missing.value.status in (403, 404)


def test_every_call_is_counted_and_timed_per_class_endpoint_and_status(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle) -> None:
    client = _client(settings, sim, redis_client, pool)
    client.get_json(ME, budget="webhook")
    client.get_json(ME, budget="webhook")
    sim.set_faults("5xx", count=1)
    client.get_json(ME, budget="on_demand")
    stats = {(s.budget, s.endpoint, s.status): s for s in client.metrics.calls()}
    assert stats[("webhook", ME, "200")].calls == 2
    assert stats[("on_demand", ME, "200")].calls == 1
    assert sum(s.calls for k, s in stats.items() if k[0] == "on_demand" and k[2].startswith("5")) == 1
    assert all(s.total_ms > 0 for s in stats.values())
    assert client.metrics.wait_quantile_ms("webhook", 0.95) is not None


def iterate_pages(client: ProcoreClient, spec: EndpointSpec, *, company_id: int,
                  project_id: int | None = None, per_page: int = 100) -> Iterator[Page]:
    """Every page of one listing, the way the fetcher asks for them one job at a time."""
    path, fixed = spec.list_request(company_id=company_id, project_id=project_id, parent_id=None)
    seen, number = 0, 1
    while True:
        params = page_params(spec, fixed, page=number, per_page=per_page)
        body, response = client.get_json(path, budget="scheduled", params=params)
        page = parse_page(spec, body, response.headers, page=number, per_page=per_page, seen_before=seen)
        seen += len(page.items)
        yield page
        if page.is_last:
            return
        number += 1


def test_paging_reaches_total_and_a_v2_list_is_normalised(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle) -> None:
    client = _client(settings, sim, redis_client, pool)
    [project] = [p for p in next(iterate_pages(client, endpoint_for("project"),
                                               company_id=sim.company_id)).items][:1]
    pages = list(iterate_pages(client, endpoint_for("rfi"), company_id=sim.company_id,
                               project_id=project["id"], per_page=3))
    total = pages[0].total
    assert total and sum(len(p.items) for p in pages) == total and len(pages) == -(-total // 3)
    v2 = EndpointSpec("task", "/rest/v2.0/companies/{company_id}/projects/{project_id}/tasks", Scope.PROJECT,
                      envelope=Envelope.DATA, max_per_page=100)
    items = [i for p in iterate_pages(client, v2, company_id=sim.company_id,
                                      project_id=project["id"], per_page=4) for i in p.items]
    assert items and all(isinstance(i["id"], int) for i in items)


def test_every_registry_endpoint_answers_on_the_simulator(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle) -> None:
    client = _client(settings, sim, redis_client, pool)
    project = client.get_json("/rest/v1.1/projects", budget="scheduled",
                              params={"company_id": sim.company_id})[0][0]
    areas = client.get_json(f"/rest/v1.0/projects/{project['id']}/drawing_areas", budget="scheduled")[0]
    for kind, spec in ENDPOINTS.items():
        path, query = spec.list_request(company_id=sim.company_id, project_id=project["id"],
                                        parent_id=areas[0]["id"] if areas else 1)
        body, _ = client.get_json(path, budget="scheduled", params=query)
        assert isinstance(body, list), kind
        if spec.deleted.listing_path:
            deleted_path = spec.deleted.listing_path.format(company_id=sim.company_id,
                                                            project_id=project["id"])
            assert isinstance(client.get_json(deleted_path, budget="scheduled", params=query)[0], list)
        if spec.show_path and body:
            show_path, show_query = spec.show_request(body[0]["id"], company_id=sim.company_id,
                                                      project_id=project["id"])
            assert client.get_json(show_path, budget="scheduled", params=show_query)[0]["id"] == body[0]["id"]


def test_a_file_download_follows_the_redirect_without_sending_the_token_to_storage(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle,
        tmp_path: Path) -> None:
    client = _client(settings, sim, redis_client, pool)
    made = sim.new_file(50_000)
    url = str(made["url"])
    transfer = Transfer(client, FileStore(tmp_path))
    fetched = transfer.fetch(url, "a1", budget="scheduled")
    assert fetched.size_bytes == 50_000 == fetched.temp.stat().st_size and fetched.resumed_from == 0
    # resume: cut the file and ask again; the kept signed URL asks storage for the rest only
    with fetched.temp.open("r+b") as f:
        f.truncate(20_000)
    resumed = transfer.fetch(url, "a1", budget="scheduled")
    assert resumed.resumed_from == 20_000 and resumed.temp.stat().st_size == 50_000
    assert resumed.sha256 == fetched.sha256
    stats = sim.stats()
    assert stats["token_leaks"] == 0 and stats["storage_requests"] == 2


def test_the_token_is_never_sent_to_a_foreign_host_or_over_plain_http_storage(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, sim: SimHandle,
        tmp_path: Path) -> None:
    client = _client(settings, sim, redis_client, pool)
    with pytest.raises(UnsafeUrl):
        client.get_json("https://evil.example/rest/v1.0/me", budget="scheduled")
    made = sim.new_file(1000)
    before = sim.stats()
    # Without EVA00_ALLOW_LOOPBACK_URLS nothing plain http (or loopback) is ever fetched.
    client.policy = UrlPolicy(token_netlocs=client.policy.token_netlocs, bearer_hosts=(),
                              allow_loopback=False)
    transfer = Transfer(client, FileStore(tmp_path))
    with pytest.raises(LinkUnusable, match="not https"):
        transfer.fetch(str(made["url"]), "b1", budget="scheduled")
    after = sim.stats()
    assert after["token_leaks"] == 0 and after["requests_total"] == before["requests_total"] + 0
