"""Issue 17 finding 4: SSRF from record payloads. A record file URL or any redirect hop that points
at a private, loopback, link-local, multicast or unspecified address is refused (loopback only
when the explicit allow setting is off), a DNS name that resolves to one is refused, and the
connection goes to the address that was checked (no second lookup to swap in another)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.procore import build_client
from eva00.procore.transfer import LinkUnusable, Transfer
from eva00.procore.urlpolicy import UrlPolicy, UrlRefused
from eva00.proof.pipeline_local import settings_for_simulator
from eva00.replica.filestore import FileStore
from eva00.simulator.testing import SimHandle
from tests.integration.test_downloader import make_rig
from tests.security.hostile import HOSTILE_HOST, hostile_server


class CountingResolver:
    """getaddrinfo with fixed answers per name, counting the lookups."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        found = self.answers.get(host)
        if found is None:
            raise socket.gaierror(f"{host}: unknown")
        answer = found[min(len(self.calls), len(found)) - 1]  # a rebinding name changes its answer
        family = socket.AF_INET6 if ":" in answer else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (answer, port))]


def policy(resolver: CountingResolver | None = None, *, allow_loopback: bool = False) -> UrlPolicy:
    return UrlPolicy(token_netlocs=("api.procore.com:443",), bearer_hosts=("*.procore.com",),
                     allow_loopback=allow_loopback, resolver=resolver or socket.getaddrinfo)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::1"])
def test_a_private_loopback_link_local_multicast_or_unspecified_address_is_refused(address: str) -> None:
    with pytest.raises(UrlRefused, match="non-public"):
        policy().address_for(address, 443, tls=True)


def test_a_public_address_is_connected_to() -> None:
    assert policy().address_for("93.184.216.34", 443, tls=True) == "93.184.216.34"


def test_a_dns_name_that_resolves_to_loopback_is_refused_without_connecting() -> None:
    resolver = CountingResolver({"files.evil.example": ["127.0.0.1"]})
    session = policy(resolver).session()
    with pytest.raises(UrlRefused, match=r"non-public address 127\.0\.0\.1"):
        session.get("https://files.evil.example/secret", timeout=5)
    assert resolver.calls == ["files.evil.example"]


def test_a_name_with_one_private_answer_among_public_ones_is_refused() -> None:
    mixed = UrlPolicy(token_netlocs=(), bearer_hosts=(), allow_loopback=False,
                      resolver=lambda host, port, **_: [(socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                                         (a, port)) for a in ("93.184.216.34", "10.1.1.1")])
    with pytest.raises(UrlRefused, match=r"10\.1\.1\.1"):
        mixed.address_for("mixed.example", 443, tls=True)


def test_plain_http_and_loopback_are_refused_unless_the_allow_setting_is_on() -> None:
    with pytest.raises(UrlRefused, match="not https"):
        policy().check("http://127.0.0.1:8400/rest/v1.0/me")
    assert policy(allow_loopback=True).check("http://127.0.0.1:8400/x").port == 8400
    assert policy(allow_loopback=True).address_for("127.0.0.1", 8400, tls=False) == "127.0.0.1"
    with pytest.raises(UrlRefused, match="not loopback"):
        policy(allow_loopback=True).address_for("93.184.216.34", 80, tls=False)
    assert Settings(procore_client_id="x", procore_client_secret="y",
                    procore_company_id=1).loopback_urls_allowed is False
    assert Settings().loopback_urls_allowed is True  # the embedded simulator


def test_the_connection_goes_to_the_checked_address_and_the_name_is_looked_up_once() -> None:
    # A rebinding name: checked as HOSTILE_HOST (loopback, allowed here), then it would say 10.0.0.1.
    resolver = CountingResolver({"files.rebind.example": [HOSTILE_HOST, "10.0.0.1"]})
    session = policy(resolver, allow_loopback=True).session()
    with hostile_server({"/f": (200, {}, b"the bytes")}) as server:
        port = server.base.rsplit(":", 1)[1]
        answer = session.get(f"http://files.rebind.example:{port}/f", timeout=10)
        assert answer.content == b"the bytes"
        assert resolver.calls == ["files.rebind.example"]
        assert server.seen[0]["headers"]["host"] == f"files.rebind.example:{port}"


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as opened:
        yield opened


def _configured(settings: Settings, sim: SimHandle) -> Settings:
    return settings_for_simulator(settings, api_base=sim.api_base, login_base=sim.login_base,
                                  client_id=sim.client_id, client_secret=sim.client_secret,
                                  company_id=sim.company_id)


@pytest.mark.parametrize("target", ["https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/x",
                                    "https://[fd00::1]/x", "https://0.0.0.0/x"])
def test_a_redirect_to_a_private_address_is_refused(settings: Settings, sim: SimHandle,
                                                    redis_client: redis.Redis, pool: ConnectionPool,
                                                    tmp_path: Path, target: str) -> None:
    with hostile_server({"/start": (302, {"Location": target}, b"")}) as evil:
        transfer = Transfer(build_client(_configured(settings, sim), redis_client, pool), FileStore(tmp_path))
        with pytest.raises(LinkUnusable, match="non-public") as refused:
            transfer.fetch(evil.base + "/start", "r1", budget="scheduled")
        assert refused.value.expired is False and evil.authorization_seen() == []


def test_a_record_file_url_on_loopback_fails_for_good_when_loopback_is_not_allowed(
        settings: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    rig = make_rig(sim, settings, redis_client, pool)
    strict = UrlPolicy(token_netlocs=rig.downloader.transfer.policy.token_netlocs, bearer_hosts=(),
                       allow_loopback=False)
    rig.downloader.transfer.policy = strict
    strict.mount(rig.downloader.transfer.session)
    with hostile_server({"/f": (200, {}, b"internal secrets")}) as internal:
        link = rig.link(internal.base.replace("http://", "https://") + "/f")
        loopback_name = rig.link("https://localhost:9/admin", procore_id=2)
        rig.drain()
        assert internal.seen == []
    for link_id in (link, loopback_name):
        row = rig.row(link_id)
        assert row["status"] == "failed" and "non-public address" in row["last_error"]
    assert sim.stats()["token_leaks"] == 0

