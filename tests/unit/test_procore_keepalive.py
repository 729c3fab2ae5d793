"""The keepalive step decides from the stored renewal time, with a frozen clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from eva00.procore.auth import AccessToken
from eva00.procore.errors import AuthHalted, AuthUnavailable
from eva00.procore.tokens import StoredTokens
from eva00.stages.keepalive import Keepalive

NOW = 1_000_000.0


def _row(refreshed_at: float, expires_at: float, generation: int = 3) -> StoredTokens:
    return StoredTokens("default", "authorization_code", "a", expires_at, "r", generation, refreshed_at,
                        refreshed_at, None)


@dataclass
class FakeAuth:
    row: StoredTokens | None
    mode: str = "authorization_code"
    halted: str | None = None
    fail_with: Exception | None = None
    renewals: list[int | None] = field(default_factory=list)

    def status(self) -> StoredTokens | None:
        return self.row

    def halted_reason(self) -> str | None:
        return self.halted

    def renew(self, *, stale_generation: int | None) -> AccessToken:
        self.renewals.append(stale_generation)
        if self.fail_with:
            raise self.fail_with
        return AccessToken("new", NOW + 5400, (stale_generation or 0) + 1)


def _keepalive(auth: FakeAuth, now: float = NOW) -> Keepalive:
    return Keepalive(auth, interval_s=43200, ahead_s=300, max_sleep_s=60, clock=lambda: now)  # type: ignore[arg-type]


def test_nothing_happens_before_the_interval_or_the_expiry_margin() -> None:
    auth = FakeAuth(_row(refreshed_at=NOW - 100, expires_at=NOW + 5000))
    result = _keepalive(auth).step()
    assert not result.renewed and auth.renewals == []
    assert result.sleep_s == 60


def test_the_refresh_token_is_renewed_when_the_interval_has_elapsed_without_any_activity() -> None:
    auth = FakeAuth(_row(refreshed_at=NOW - 43200, expires_at=NOW + 5000))
    result = _keepalive(auth).step()
    assert result.renewed and auth.renewals == [3]
    assert "interval" in result.detail


def test_the_token_is_renewed_ahead_of_its_expiry() -> None:
    auth = FakeAuth(_row(refreshed_at=NOW - 100, expires_at=NOW + 299))
    result = _keepalive(auth).step()
    assert result.renewed and "expires soon" in result.detail


def test_client_credentials_mode_checks_a_token_can_still_be_obtained() -> None:
    auth = FakeAuth(_row(refreshed_at=NOW - 43200, expires_at=NOW + 5000), mode="client_credentials")
    result = _keepalive(auth).step()
    assert result.renewed and result.detail.startswith("check")


def test_a_halted_grant_is_left_alone() -> None:
    auth = FakeAuth(_row(refreshed_at=NOW - 10**6, expires_at=NOW - 10), halted="refresh token rejected")
    result = _keepalive(auth).step()
    assert not result.renewed and auth.renewals == [] and "halted" in result.detail


def test_a_failed_renewal_is_retried_with_growing_backoff() -> None:
    auth = FakeAuth(_row(refreshed_at=NOW - 43200, expires_at=NOW + 5000),
                    fail_with=AuthUnavailable("token endpoint answered 503", delay_s=1.0))
    keepalive = Keepalive(auth, interval_s=43200, ahead_s=300, max_sleep_s=10**6,  # type: ignore[arg-type]
                          clock=lambda: NOW)
    first, second = keepalive.step(), keepalive.step()
    assert not first.renewed and keepalive.failures == 2
    assert 1.0 <= first.sleep_s <= 2.0 and 1.0 <= second.sleep_s <= 3.0


def test_a_rejection_during_renewal_stops_the_renewals() -> None:
    auth = FakeAuth(_row(refreshed_at=NOW - 43200, expires_at=NOW + 5000),
                    fail_with=AuthHalted("Procore calls halted: refresh token rejected", delay_s=60))
    result = _keepalive(auth).step()
    assert not result.renewed and "halted" in result.detail


def test_with_no_token_stored_a_renewal_is_due_at_once() -> None:
    auth = FakeAuth(None, mode="client_credentials")
    assert _keepalive(auth).step().renewed and auth.renewals == [None]
