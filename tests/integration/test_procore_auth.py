"""OAuth against the simulator over real HTTP: both grants, the shared token, 401 recovery, a
rejected or lost refresh, and the login command's two ways of taking the code."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
import requests
from psycopg_pool import ConnectionPool

from eva00.cli.auth import describe, login
from eva00.config import Settings
from eva00.ops.localstack import free_port
from eva00.procore import build_authenticator, build_client
from eva00.procore.auth import ALERT_REAUTHORIZE, Authenticator
from eva00.procore.errors import AuthHalted
from eva00.procore.tokens import OOB_REDIRECT_URI, TokenEndpoint
from eva00.simulator.testing import SimHandle


def sim_settings(settings: Settings, sim: SimHandle, **changes: object) -> Settings:
    return settings.replace(procore_api_base=sim.api_base, procore_login_base=sim.login_base,
                            allow_loopback_urls=True,
                            procore_client_id=sim.client_id, procore_client_secret=sim.client_secret,
                            procore_company_id=sim.company_id, http_timeout_s=10.0, **changes)


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as opened:
        yield opened


def token_calls(sim: SimHandle) -> list[dict[str, object]]:
    return [e for e in sim.ledger() if e["path"] == "/oauth/token"]


def open_in_browser(sim: SimHandle) -> Callable[[str], None]:
    """What the operator's browser does: open the authorize URL, approve, follow the redirect."""

    def show(text: str) -> None:
        match = re.search(r"(http://\S+/oauth/authorize\?\S+)", text)
        if match:
            threading.Thread(target=requests.get, args=(match.group(1),), kwargs={"timeout": 10},
                             daemon=True).start()

    return show


def pasted_code(sim: SimHandle, settings: Settings) -> str:
    url = TokenEndpoint(settings).authorize_url(OOB_REDIRECT_URI, "s")
    page = requests.get(url, timeout=10).text
    found = re.search(r'id="authorization_code">([^<]+)<', page)
    assert found, page
    return found.group(1)


def logged_in(settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
              sim: SimHandle) -> Authenticator:
    auth = build_authenticator(settings, redis_client, pool)
    login(settings, auth, TokenEndpoint(settings), show=lambda _: None,
          read_code=lambda: pasted_code(sim, settings), paste=True)
    return auth


def test_client_credentials_token_is_obtained_once_and_shared_by_every_process(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory()
    config = sim_settings(settings, sim)
    first, second = (build_authenticator(config, redis_client, pool) for _ in range(2))
    token = first.current()
    assert second.current() == token and token.generation == 1
    assert len(token_calls(sim)) == 1
    row = first.status()
    assert row is not None and row.refresh_token is None and row.auth_mode == "client_credentials"
    client = build_client(config, redis_client, pool)
    body, _ = client.get_json("/rest/v1.0/companies", budget="scheduled")
    assert body[0]["id"] == sim.company_id


def test_a_login_through_the_callback_listener_stores_tokens_that_then_rotate(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code",
                          procore_redirect_uri=f"http://127.0.0.1:{free_port()}/callback")
    auth = build_authenticator(config, redis_client, pool)
    generation = login(config, auth, TokenEndpoint(config), show=open_in_browser(sim),
                       read_code=lambda: pytest.fail("the listener should catch the code"), timeout_s=20)
    stored = auth.status()
    assert generation == 1 and stored is not None and stored.refresh_token
    renewed = auth.renew(stale_generation=1)
    rotated = auth.status()
    assert renewed.generation == 2 and rotated is not None
    assert rotated.refresh_token and rotated.refresh_token != stored.refresh_token
    assert [e["status"] for e in token_calls(sim)] == [200, 200]


def test_an_out_of_band_login_takes_the_pasted_code(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    auth = logged_in(config, redis_client, pool, sim)
    assert auth.current().generation == 1
    lines = "\n".join(describe(auth.status(), "authorization_code", None, 0.0))
    assert "refresh token:  present" in lines and "generation:     1" in lines


def test_a_401_is_answered_by_one_shared_renewal_and_one_retry(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    logged_in(config, redis_client, pool, sim)
    client = build_client(config, redis_client, pool)
    client.get_json("/rest/v1.0/me", budget="scheduled")
    sim.expire_tokens()
    body, _ = client.get_json("/rest/v1.0/me", budget="scheduled")
    assert body
    statuses = [(e["path"], e["status"]) for e in sim.ledger()]
    assert statuses[-3:] == [("/rest/v1.0/me", 401), ("/oauth/token", 200), ("/rest/v1.0/me", 200)]
    assert client.metrics.events()["unauthorized_renewal"] == 1


def _alerts(database_url: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(database_url) as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT alert_key, severity, status, message FROM alerts ORDER BY id").fetchall()]


def test_a_rejected_refresh_token_halts_every_process_with_one_critical_alert(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, database_url: str,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    auth = logged_in(config, redis_client, pool, sim)
    stolen = auth.status()
    assert stolen is not None and stolen.refresh_token
    # someone else used the refresh token (a restored backup, a second deployment): it is dead
    TokenEndpoint(config).refresh(stolen.refresh_token)
    calls_before = len(token_calls(sim))
    with pytest.raises(AuthHalted):
        auth.renew(stale_generation=stolen.generation)
    # every other process stops too, without a single further call
    peers = [build_client(config, redis_client, pool) for _ in range(3)]
    for peer in peers:
        with pytest.raises(AuthHalted):
            peer.get_json("/rest/v1.0/me", budget="webhook")
    redis_client.delete("eva00:oauth:halted")  # even with Redis flushed, PostgreSQL remembers
    with pytest.raises(AuthHalted):
        build_authenticator(config, redis_client, pool).renew(stale_generation=None)
    assert len(token_calls(sim)) == calls_before + 1
    [alert] = _alerts(database_url)
    assert alert[:3] == (ALERT_REAUTHORIZE, "critical", "open") and "eva00 auth login" in alert[3]
    # the operator logs in again: the halt lifts and the alert resolves
    logged_in(config, redis_client, pool, sim)
    assert peers[0].get_json("/rest/v1.0/me", budget="webhook")[0]
    assert _alerts(database_url)[0][2] == "resolved"


class LosingSession(requests.Session):
    """Delivers the next refresh request to the server, then loses its answer."""

    lose_next_refresh = False

    def post(self, url: str | bytes, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
        response = super().post(url, *args, **kwargs)  # type: ignore[arg-type]
        data = kwargs.get("data")
        if self.lose_next_refresh and isinstance(data, dict) and data.get("grant_type") == "refresh_token":
            self.lose_next_refresh = False
            raise requests.ConnectionError("connection reset by peer")
        return response


def test_a_lost_refresh_answer_is_retried_once_and_then_halts_without_a_storm(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool, database_url: str,
        sim_factory: Callable[..., SimHandle]) -> None:
    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    logged_in(config, redis_client, pool, sim)
    session = LosingSession()
    auth = Authenticator(config, redis_client, pool, endpoint=TokenEndpoint(config, session=session))
    session.lose_next_refresh = True
    calls_before = len(token_calls(sim))
    with pytest.raises(AuthHalted):
        auth.renew(stale_generation=1)
    # the lost answer had used the token up: the one retry hears invalid_grant, and that is all
    assert [e["status"] for e in token_calls(sim)][calls_before:] == [200, 400]
    for _ in range(5):
        with pytest.raises(AuthHalted):
            auth.current()
    assert len(token_calls(sim)) == calls_before + 2
    assert [a[0] for a in _alerts(database_url)] == [ALERT_REAUTHORIZE]


def test_auth_status_shows_mode_expiry_and_last_refresh_but_no_secret(
        settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        sim_factory: Callable[..., SimHandle], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from eva00.cli.auth import main

    sim = sim_factory(auto_approve=True)
    config = sim_settings(settings, sim, procore_auth_mode="authorization_code")
    auth = logged_in(config, redis_client, pool, sim)
    for name, value in {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url,
                        "PROCORE_CLIENT_ID": sim.client_id, "PROCORE_CLIENT_SECRET": sim.client_secret,
                        "PROCORE_COMPANY_ID": str(sim.company_id),
                        "PROCORE_AUTH_MODE": "authorization_code"}.items():
        monkeypatch.setenv(name, value)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    row = auth.status()
    assert row is not None and row.access_token and row.refresh_token
    assert "authorization_code" in out and "last refresh:" in out and "expires" in out
    assert row.access_token not in out and row.refresh_token not in out and sim.client_secret not in out
