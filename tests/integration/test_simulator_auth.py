"""OAuth over real HTTP: client credentials, authorization code (auto-approved, form-approved and
out of band), rotating single-use refresh tokens, expiry, revoke and the documented errors."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from eva00.simulator.testing import SimHandle, running_simulator

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_simulator(
        tmp_path_factory.mktemp("sim"), projects=1, items=50, rate_limit="off", auto_approve=True
    ) as handle:
        yield handle


def token(sim: SimHandle, **params: Any) -> requests.Response:
    return requests.post(sim.login_base + "/oauth/token", data=params, timeout=30)


def authorization_code(sim: SimHandle, redirect: str = REDIRECT) -> str:
    answer = requests.get(
        sim.login_base + "/oauth/authorize",
        allow_redirects=False,
        timeout=30,
        params={
            "response_type": "code",
            "client_id": sim.client_id,
            "redirect_uri": redirect,
            "state": "xyz",
        },
    )
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["state"] == ["xyz"]
    return query["code"][0]


def code_grant(sim: SimHandle, code: str, redirect: str = REDIRECT) -> requests.Response:
    return token(
        sim,
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
    )


def refresh(sim: SimHandle, value: str) -> requests.Response:
    return token(
        sim,
        grant_type="refresh_token",
        refresh_token=value,
        client_id=sim.client_id,
        client_secret=sim.client_secret,
    )


def api(sim: SimHandle, access: str) -> requests.Response:
    return requests.get(
        sim.api_base + "/rest/v1.0/me",
        timeout=30,
        headers={"Authorization": f"Bearer {access}", "Procore-Company-Id": str(sim.company_id)},
    )


def test_client_credentials_give_a_bearer_token_without_refresh_token(shared: SimHandle) -> None:
    body = token(shared, **shared.client_credentials()).json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 5400 and "refresh_token" not in body
    assert isinstance(body["created_at"], int) and api(shared, body["access_token"]).status_code == 200


@pytest.mark.parametrize("encoding", ["form", "json", "multipart"])
def test_the_token_endpoint_reads_form_json_and_multipart_bodies(shared: SimHandle, encoding: str) -> None:
    fields = shared.client_credentials()
    url = shared.login_base + "/oauth/token"
    if encoding == "form":
        answer = requests.post(url, data=fields, timeout=30)
    elif encoding == "json":
        answer = requests.post(url, json=fields, timeout=30)
    else:
        answer = requests.post(url, files={k: (None, v) for k, v in fields.items()}, timeout=30)
    assert answer.status_code == 200 and answer.json()["access_token"]


def test_an_authorization_code_is_exchanged_once_for_rotating_tokens(shared: SimHandle) -> None:
    code = authorization_code(shared)
    first = code_grant(shared, code)
    assert first.status_code == 200 and first.json()["refresh_token"]
    again = code_grant(shared, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_refresh_token_rotates_and_dies_on_first_use(shared: SimHandle) -> None:
    tokens = code_grant(shared, authorization_code(shared)).json()
    second = refresh(shared, tokens["refresh_token"])
    assert second.status_code == 200 and second.json()["refresh_token"] != tokens["refresh_token"]
    replay = refresh(shared, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert api(shared, tokens["access_token"]).status_code == 401
    assert api(shared, second.json()["access_token"]).status_code == 200
    assert refresh(shared, second.json()["refresh_token"]).status_code == 200


def test_the_code_must_come_back_with_the_same_redirect_uri(shared: SimHandle) -> None:
    answer = code_grant(shared, authorization_code(shared), redirect="http://127.0.0.1:9/other")
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_the_out_of_band_flow_shows_the_code_to_paste(shared: SimHandle) -> None:
    oob = "urn:ietf:wg:oauth:2.0:oob"
    answer = requests.get(
        shared.login_base + "/oauth/authorize",
        timeout=30,
        params={"response_type": "code", "client_id": shared.client_id, "redirect_uri": oob},
    )
    assert answer.status_code == 200 and "text/html" in answer.headers["Content-Type"]
    code = re.search(r'<code id="authorization_code">([^<]+)</code>', answer.text)
    assert code is not None and code_grant(shared, code.group(1), oob).status_code == 200


def test_without_auto_approve_the_authorize_page_asks_and_the_form_approves(sim: SimHandle) -> None:
    params = {"response_type": "code", "client_id": sim.client_id, "redirect_uri": REDIRECT, "state": "s"}
    page = requests.get(sim.login_base + "/oauth/authorize", params=params, timeout=30)
    assert page.status_code == 200 and 'name="decision"' in page.text
    approved = requests.post(
        sim.login_base + "/oauth/authorize",
        data={**params, "decision": "approve"},
        allow_redirects=False,
        timeout=30,
    )
    code = parse_qs(urlsplit(approved.headers["Location"]).query)["code"][0]
    assert code_grant(sim, code).status_code == 200
    denied = requests.post(
        sim.login_base + "/oauth/authorize",
        data={**params, "decision": "deny"},
        allow_redirects=False,
        timeout=30,
    )
    assert "error=access_denied" in denied.headers["Location"]


def test_revoke_kills_the_access_token_and_its_refresh_token(shared: SimHandle) -> None:
    tokens = code_grant(shared, authorization_code(shared)).json()
    answer = requests.post(
        shared.login_base + "/oauth/revoke",
        timeout=30,
        data={
            "token": tokens["access_token"],
            "client_id": shared.client_id,
            "client_secret": shared.client_secret,
        },
    )
    assert answer.status_code == 200
    assert api(shared, tokens["access_token"]).json() == {"errors": "The access token was revoked"}
    assert refresh(shared, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_access_tokens_expire_after_their_configured_lifetime(sim_factory: Any) -> None:
    short = sim_factory(token_lifetime_s=1)
    body = token(short, **short.client_credentials()).json()
    assert body["expires_in"] == 1 and api(short, body["access_token"]).status_code == 200
    time.sleep(1.2)
    expired = api(short, body["access_token"])
    assert expired.status_code == 401 and expired.json() == {"errors": "The access token expired"}
    assert "invalid_token" in expired.headers["WWW-Authenticate"]


def test_expiring_every_token_on_demand_forces_a_new_token(shared: SimHandle) -> None:
    access = shared.token()
    shared.expire_tokens()
    assert api(shared, access).status_code == 401
    assert api(shared, shared.token()).status_code == 200


def test_refresh_tokens_left_idle_too_long_expire(sim_factory: Any) -> None:
    idle = sim_factory(refresh_idle_expiry_s=1, auto_approve=True)
    tokens = code_grant(idle, authorization_code(idle)).json()
    time.sleep(1.2)
    assert refresh(idle, tokens["refresh_token"]).json()["error"] == "invalid_grant"


GOOD = {"client_id": "ID", "client_secret": "SECRET"}


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        (GOOD, 400, "invalid_request"),
        ({**GOOD, "grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_id": "ID"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "ID", "client_secret": "wrong"},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "other", "client_secret": "SECRET"},
            401,
            "invalid_client",
        ),
        ({**GOOD, "grant_type": "authorization_code", "redirect_uri": REDIRECT}, 400, "invalid_request"),
        (
            {**GOOD, "grant_type": "authorization_code", "code": "nope", "redirect_uri": REDIRECT},
            400,
            "invalid_grant",
        ),
        ({**GOOD, "grant_type": "refresh_token"}, 400, "invalid_request"),
        ({**GOOD, "grant_type": "refresh_token", "refresh_token": "nope"}, 400, "invalid_grant"),
    ],
)
def test_token_endpoint_errors_have_oauths_status_and_shape(
    shared: SimHandle, fields: dict[str, str], status: int, error: str
) -> None:
    real = {"ID": shared.client_id, "SECRET": shared.client_secret}
    answer = token(shared, **{k: real.get(v, v) for k, v in fields.items()})
    assert answer.status_code == status
    assert answer.json()["error"] == error and answer.json()["error_description"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-token"}, 401),
        ({"Authorization": "Basic Zm9vOmJhcg=="}, 401),
    ],
)
def test_api_calls_without_a_valid_bearer_token_are_401(
    shared: SimHandle, headers: dict[str, str], status: int
) -> None:
    answer = requests.get(
        shared.api_base + "/rest/v1.0/me",
        timeout=30,
        headers={"Procore-Company-Id": str(shared.company_id), **headers},
    )
    assert answer.status_code == status and "errors" in answer.json()


def test_lenient_mode_accepts_what_third_party_clients_send(sim_factory: Any) -> None:
    strict, lenient = sim_factory(), sim_factory(lenient=True)
    for handle, expected in ((strict, (401, 400)), (lenient, (200, 200))):
        basic = requests.post(
            handle.login_base + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(handle.client_id, handle.client_secret),
            timeout=30,
        )
        assert basic.status_code == expected[0]
        access = handle.token()
        no_company = requests.get(
            handle.api_base + "/rest/v1.0/me", timeout=30, headers={"Authorization": f"Bearer {access}"}
        )
        assert no_company.status_code == expected[1]
