"""Token state machine with a frozen clock: codes, rotation, idle expiry, revocation."""

from __future__ import annotations

import pytest

from eva00.simulator.oauth import OAuth, OAuthError
from eva00.simulator.options import SimOptions


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def oauth(clock: Clock) -> OAuth:
    return OAuth(SimOptions(token_lifetime_s=60, refresh_idle_expiry_s=100), clock=clock)


def creds(oauth: OAuth, **extra: str) -> dict[str, str]:
    return {"client_id": oauth.options.client_id, "client_secret": oauth.options.client_secret, **extra}


def grant(oauth: OAuth) -> dict[str, object]:
    code = oauth.new_code(oauth.options.client_id, "http://127.0.0.1/cb")
    return oauth.token(
        creds(oauth, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1/cb")
    )


def test_access_tokens_expire_after_their_lifetime(oauth: OAuth, clock: Clock) -> None:
    access = str(oauth.token(creds(oauth, grant_type="client_credentials"))["access_token"])
    assert oauth.lookup(access)[1] == ""
    clock.now += 60
    assert oauth.lookup(access)[1] == "The access token expired"


def test_a_used_refresh_token_is_dead_even_if_its_answer_was_lost(oauth: OAuth) -> None:
    first = grant(oauth)
    oauth.token(creds(oauth, grant_type="refresh_token", refresh_token=str(first["refresh_token"])))
    with pytest.raises(OAuthError) as refused:
        oauth.token(creds(oauth, grant_type="refresh_token", refresh_token=str(first["refresh_token"])))
    assert refused.value.error == "invalid_grant"


def test_an_idle_refresh_token_expires_and_is_spent_by_the_attempt(oauth: OAuth, clock: Clock) -> None:
    first = grant(oauth)
    clock.now += 101
    with pytest.raises(OAuthError):
        oauth.token(creds(oauth, grant_type="refresh_token", refresh_token=str(first["refresh_token"])))


def test_codes_expire_after_ten_minutes(oauth: OAuth, clock: Clock) -> None:
    code = oauth.new_code(oauth.options.client_id, "http://127.0.0.1/cb")
    clock.now += 601
    with pytest.raises(OAuthError):
        oauth.token(
            creds(oauth, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1/cb")
        )


def test_revoking_a_refresh_token_also_revokes_its_access_token(oauth: OAuth) -> None:
    tokens = grant(oauth)
    oauth.revoke(str(tokens["refresh_token"]))
    assert oauth.lookup(str(tokens["access_token"]))[1] == "The access token was revoked"
