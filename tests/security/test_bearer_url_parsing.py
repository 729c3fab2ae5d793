"""Issue 17 finding 3 and Secure File Access: the bearer token goes only to an https URL on the API
or login host or a bearer host, judged with the parser requests itself uses. A backslash, user-info
or control characters never get the token, on the first hop or any redirect, and the storage host
never sees it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import urllib3
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.procore import build_client
from eva00.procore.errors import UnsafeUrl
from eva00.procore.transfer import LinkUnusable, Transfer
from eva00.procore.urlpolicy import UrlPolicy, UrlRefused
from eva00.proof.pipeline_local import settings_for_simulator
from eva00.replica.filestore import FileStore
from eva00.simulator.testing import SimHandle
from tests.security.hostile import hostile_server

PRODUCTION = UrlPolicy(token_netlocs=("api.procore.com:443", "login.procore.com:443"),
                       bearer_hosts=("*.procore.com",), allow_loopback=False)

NEVER_THE_TOKEN = [
    "https://evil\\@api.procore.com/x",  # urlsplit: host api.procore.com; urllib3: host evil
    "https://evil%5C@api.procore.com/x",
    "https://user@api.procore.com/x",
    "https://user:pw@api.procore.com/x",
    "https://api.procore.com\x00.evil.example/x",
    "https://api.procore.com/x\r\nHost: evil.example",
    "https://api.procore.com\t/x",
    "https://api.procore.com /x",
    "http://api.procore.com/x",
    "ftp://api.procore.com/x",
    "https://api.procore.com.evil.example/x",
    "https://evilprocore.com/x",
    "https://procore.com/x",
    "https://storage.example.s3.amazonaws.com/x?X-Amz-Signature=abc",
    "//api.procore.com/x",
    "https://[::1]/x",
]


@pytest.mark.parametrize("url", NEVER_THE_TOKEN)
def test_a_url_that_is_not_plainly_a_procore_host_never_carries_the_token(url: str) -> None:
    assert PRODUCTION.may_carry_token(url) is False


@pytest.mark.parametrize("url", [
    "https://api.procore.com/rest/v1.0/files/1/download", "https://login.procore.com/oauth/token",
    "https://storage.procore.com/f/1", "https://app.procore.com/f/1", "https://API.Procore.com./x"])
def test_the_api_login_and_bearer_hosts_carry_the_token_over_https(url: str) -> None:
    assert PRODUCTION.may_carry_token(url) is True


def test_the_backslash_url_is_refused_because_the_http_library_would_send_it_to_another_host() -> None:
    url = "https://evil\\@api.procore.com/x"
    assert urllib3.util.parse_url(url).host != "api.procore.com"  # the parser disagreement itself
    with pytest.raises(UrlRefused, match="backslash"):
        PRODUCTION.check(url)


@pytest.fixture
def configured(settings: Settings, sim: SimHandle) -> Settings:
    return settings_for_simulator(settings, api_base=sim.api_base, login_base=sim.login_base,
                                  client_id=sim.client_id, client_secret=sim.client_secret,
                                  company_id=sim.company_id)


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=2, open=True) as opened:
        yield opened


def test_the_client_refuses_the_backslash_url_and_nothing_is_sent_anywhere(
        configured: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    client = build_client(configured, redis_client, pool)
    port = sim.api_base.rsplit(":", 1)[1]
    before = sim.stats()["requests_total"]
    with hostile_server({}) as evil:
        for url in (f"http://{evil.base.split('//')[1]}\\@127.0.0.1:{port}/rest/v1.0/me",
                    f"http://x@127.0.0.1:{port}/rest/v1.0/me", f"http://127.0.0.1:{port}/rest/v1.0/me\n"):
            with pytest.raises(UnsafeUrl):
                client.request("GET", url, budget="scheduled")
        assert evil.seen == []
    assert sim.stats()["requests_total"] == before


def test_a_redirect_to_the_backslash_url_ends_the_download_without_the_token_going_anywhere(
        configured: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool,
        tmp_path: Path) -> None:
    port = sim.api_base.rsplit(":", 1)[1]
    with hostile_server({}) as evil:
        evil.answers["/start"] = (302, {"Location": f"http://evil\\@127.0.0.1:{port}/rest/v1.0/me"}, b"")
        transfer = Transfer(build_client(configured, redis_client, pool), FileStore(tmp_path))
        with pytest.raises(LinkUnusable, match="backslash") as refused:
            transfer.fetch(evil.base + "/start", "bs1", budget="scheduled")
        assert refused.value.expired is False
        assert [s["path"] for s in evil.seen] == ["/start"] and evil.authorization_seen() == []


def test_a_record_file_reaches_storage_through_the_file_host_and_storage_never_sees_the_token(
        configured: Settings, sim: SimHandle, redis_client: redis.Redis, pool: ConnectionPool,
        tmp_path: Path) -> None:
    made = sim.new_file(40_000)
    assert str(made["url"]).startswith(sim.file_base)
    fetched = Transfer(build_client(configured, redis_client, pool), FileStore(tmp_path)).fetch(
        str(made["url"]), "ok1", budget="scheduled")
    assert fetched.size_bytes == 40_000
    hops = [(e["host"], e["status"], e["authorization_present"]) for e in sim.ledger()
            if e["host"] in ("files", "storage")]
    assert hops == [("files", 302, True), ("storage", 200, False)]
    assert sim.stats()["token_leaks"] == 0


def test_the_file_host_refuses_a_request_without_the_token_and_storage_refuses_one_with_it(
        sim: SimHandle) -> None:
    import requests

    made = sim.new_file(1000)
    assert requests.get(str(made["url"]), allow_redirects=False, timeout=30).status_code == 401
    leaked = requests.get(str(made["storage_url"]), headers=sim.headers(), timeout=30)
    assert leaked.status_code in (400, 403)
    assert sim.stats()["token_leaks"] == 1  # the simulator counts it: the bench reports 0 for us
