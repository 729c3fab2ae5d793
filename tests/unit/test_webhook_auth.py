"""Webhook authenticity: exact Authorization values, rotation, the optional HMAC, the secrets file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from eva00.webhooks import auth
from eva00.webhooks.auth import Authenticator, SecretFile, matches_any, sign, signature_valid

SECRET = "w3bh00k-Secret-value-0123456789"
OLD_SECRET = "previous-secret-kept-during-rotation"


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        pytest.param(SECRET, True, id="exact"),
        pytest.param(OLD_SECRET, True, id="previous secret during rotation"),
        pytest.param(None, False, id="missing"),
        pytest.param("", False, id="empty"),
        pytest.param("wrong-secret", False, id="wrong"),
        pytest.param(SECRET.upper(), False, id="wrong case (upper)"),
        pytest.param(SECRET.swapcase(), False, id="wrong case (swapped)"),
        pytest.param("Bearer " + SECRET, False, id="padded with a scheme"),
        pytest.param(SECRET + "x", False, id="padded after"),
        pytest.param("x" + SECRET, False, id="padded before"),
        pytest.param(SECRET + "\x00", False, id="padded with NUL"),
        pytest.param(SECRET[:-1], False, id="prefix"),
        pytest.param(SECRET + "," + OLD_SECRET, False, id="two values joined"),
    ],
)
def test_only_an_exact_accepted_authorization_value_passes(header: str | None,
                                                          accepted: bool) -> None:
    authenticator = Authenticator([SECRET, OLD_SECRET], None)
    assert authenticator.authorization_valid(header) is accepted


def test_without_any_secret_every_delivery_is_refused(tmp_path: Path) -> None:
    authenticator = Authenticator([], SecretFile(tmp_path / "none"))
    assert not authenticator.has_secrets
    assert not authenticator.authorization_valid("")
    assert not authenticator.authorization_valid("anything")


def test_every_secret_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert matches_any("first", ["first", "second", "third"])
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        pytest.param(sign("k", b"body"), True, id="sha256= prefix"),
        pytest.param(sign("k", b"body")[7:], True, id="bare hex"),
        pytest.param(sign("k", b"body")[7:].upper(), True, id="upper-case hex"),
        pytest.param(sign("k", b"other body"), False, id="other body"),
        pytest.param(sign("other key", b"body"), False, id="other key"),
        pytest.param(None, False, id="missing"),
        pytest.param("", False, id="empty"),
        pytest.param("sha256=", False, id="prefix only"),
    ],
)
def test_the_hmac_signature_covers_the_raw_body(header: str | None, valid: bool) -> None:
    assert signature_valid("k", b"body", header) is valid


def test_the_hmac_is_required_only_when_configured() -> None:
    assert Authenticator([SECRET], None).body_valid(b"body", None)
    assert not Authenticator([SECRET], None, hmac_secret="k").body_valid(b"body", None)
    assert Authenticator([SECRET], None, hmac_secret="k").body_valid(b"body", sign("k", b"body"))


def test_a_rotation_keeps_the_previous_secret_and_drops_older_ones(tmp_path: Path) -> None:
    store = SecretFile(tmp_path / "var" / "webhook-secrets")
    store.rotate("one")
    store.rotate("two")
    store.rotate("three")
    assert store.read(fresh=True) == ("three", "two")
    assert store.current() == "three"
    assert stat.S_IMODE((tmp_path / "var" / "webhook-secrets").stat().st_mode) == 0o600


def test_a_running_listener_sees_a_new_secret_after_the_recheck_interval(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "webhook-secrets"
    reader = SecretFile(path, recheck_s=1.0, clock=lambda: now[0])
    authenticator = Authenticator([], reader)
    assert not authenticator.authorization_valid("fresh-secret")
    SecretFile(path).rotate("fresh-secret")
    now[0] += 0.5
    assert not authenticator.authorization_valid("fresh-secret")  # cached until the recheck
    now[0] += 1.0
    assert authenticator.authorization_valid("fresh-secret")


def test_generated_secrets_are_long_and_distinct() -> None:
    first, second = auth.generate_secret(), auth.generate_secret()
    assert first != second
    assert len(first) >= 43
