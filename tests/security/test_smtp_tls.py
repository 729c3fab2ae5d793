"""Finding 8 of the security issue, replayed: alert email used ``starttls()`` without a context
(any certificate was accepted, so a machine in the path read the SMTP password) and ``login()``
over plaintext when STARTTLS was off.

Each replay configures the email sink the way an operator does (environment -> NotifyConfig ->
build_sinks) and points it at a real SMTP server playing the attacker; what crossed the wire is
read from the server's transcript. There is no setting that allows a password over plaintext.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest

from eva00.ops.notify import EmailSink, InsecureSmtp, Notice, NotifyConfig, SmtpTls, build_sinks
from tests.smtp_responder import Transcript, self_signed_cert, smtp_responder

NOTICE = Notice(7, "opened", "disk-space-low", "critical", "disk full", {})
USER, PASSWORD = "alerts@example.com", "correct horse battery staple"


@pytest.fixture(scope="module")
def attacker_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA the sink trusts has signed."""
    return self_signed_cert(tmp_path_factory.mktemp("attacker"))


def email_sink(port: int, **extra: str) -> EmailSink:
    environ = {"EVA00_ALERT_SMTP_HOST": "127.0.0.1", "EVA00_ALERT_SMTP_PORT": str(port),
               "EVA00_ALERT_EMAIL_TO": "ops@example.com", "EVA00_ALERT_SMTP_USER": USER,
               "EVA00_ALERT_SMTP_PASSWORD": PASSWORD, **extra}
    sinks = [sink for sink in build_sinks(NotifyConfig.from_env(environ)) if isinstance(sink, EmailSink)]
    assert len(sinks) == 1
    return sinks[0]


def password_seen(transcript: Transcript) -> bool:
    """The password in any form smtplib sends it (AUTH PLAIN or LOGIN, base64) or in the clear."""
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    login = base64.b64encode(PASSWORD.encode()).decode()
    return any(secret in command for command in transcript.commands for secret in (plain, login, PASSWORD))


def test_a_user_with_no_tls_setting_gets_starttls_not_a_plaintext_login(
        attacker_cert: tuple[Path, Path]) -> None:
    assert email_sink(25).config.tls is SmtpTls.STARTTLS
    with smtp_responder("starttls", attacker_cert) as server, pytest.raises(ssl.SSLCertVerificationError):
        email_sink(server.port).send(NOTICE)
    assert "STARTTLS" in server.transcript.commands
    assert not server.transcript.auth_seen and not password_seen(server.transcript)


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_a_server_with_an_untrusted_certificate_never_sees_the_login(
        attacker_cert: tuple[Path, Path], mode: str) -> None:
    with smtp_responder(mode, attacker_cert) as server, pytest.raises(ssl.SSLCertVerificationError):
        email_sink(server.port, EVA00_ALERT_SMTP_TLS=mode).send(NOTICE)
    assert not server.transcript.auth_seen and not password_seen(server.transcript)
    assert server.transcript.messages == []


def test_a_server_that_strips_starttls_from_its_offer_never_sees_the_login() -> None:
    with smtp_responder("plain") as server, pytest.raises(InsecureSmtp, match="does not offer STARTTLS"):
        email_sink(server.port, EVA00_ALERT_SMTP_TLS="starttls").send(NOTICE)
    assert not server.transcript.auth_seen and not password_seen(server.transcript)


@pytest.mark.parametrize("extra", [
    {"EVA00_ALERT_SMTP_TLS": "none"},
    {"EVA00_ALERT_SMTP_TLS": "none", "EVA00_ALERT_SMTP_STARTTLS": "false"},
])
def test_a_login_over_plaintext_is_refused_before_connecting(extra: dict[str, str]) -> None:
    with smtp_responder("plain") as server, pytest.raises(InsecureSmtp, match="plaintext"):
        email_sink(server.port, **extra).send(NOTICE)
    assert server.transcript.commands == [] and not password_seen(server.transcript)


def test_the_trusted_server_gets_the_login_only_inside_tls(attacker_cert: tuple[Path, Path]) -> None:
    """The control: with the certificate trusted (EVA00_ALERT_SMTP_CA_FILE) the same sink logs in
    and sends, so the refusals above are the certificate's doing."""
    with smtp_responder("starttls", attacker_cert) as server:
        email_sink(server.port, EVA00_ALERT_SMTP_CA_FILE=str(attacker_cert[0])).send(NOTICE)
    transcript = server.transcript
    assert transcript.auth_seen and len(transcript.messages) == 1
    assert password_seen(transcript)  # the detector sees a login when there is one (decrypted here)
    assert all(c in transcript.tls_commands for c in transcript.commands if c.upper().startswith("AUTH"))
