"""Alert email over a real (test) SMTP server: TLS is started and its certificate verified, and
the SMTP password never crosses a connection that is not TLS."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.ops.notify import EmailSink, InsecureSmtp, Notice, Notifier, SmtpConfig, SmtpTls
from eva00.runtime import alerts, db
from tests.smtp_responder import Transcript, self_signed_cert, smtp_responder

NOTICE = Notice(1, "opened", "disk-space-low", "critical", "disk full", {"free_ratio": 0.1})


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    pool = db.make_pool(settings, max_size=2, name="test-notify-smtp")
    yield pool
    pool.close()


def _sink(port: int, tls: SmtpTls, *, user: str = "ops", ca_file: Path | None = None) -> EmailSink:
    return EmailSink(SmtpConfig("127.0.0.1", port, "eva@x", ("ops@x",), user, "s3cret" if user else "",
                                tls=tls, ca_file=str(ca_file or ""), timeout_s=5.0))


def _password_on_the_wire(transcript: Transcript) -> bool:
    return transcript.auth_seen and any(c.upper().startswith("AUTH")
                                        for c in transcript.commands if c not in transcript.tls_commands)


def test_credentials_are_never_sent_when_the_server_offers_no_starttls() -> None:
    with smtp_responder("plain") as server, pytest.raises(InsecureSmtp, match="does not offer STARTTLS"):
        _sink(server.port, SmtpTls.STARTTLS).send(NOTICE)
    assert not server.transcript.auth_seen
    assert server.transcript.messages == []


def test_a_user_with_tls_none_is_refused_before_anything_is_sent() -> None:
    with smtp_responder("plain") as server, pytest.raises(InsecureSmtp, match="plaintext"):
        _sink(server.port, SmtpTls.NONE).send(NOTICE)
    assert server.transcript.commands == []


def test_a_relay_without_credentials_still_takes_mail_over_plaintext() -> None:
    with smtp_responder("plain") as server:
        _sink(server.port, SmtpTls.NONE, user="").send(NOTICE)
    assert not server.transcript.auth_seen
    assert b"Subject: [eva00 CRITICAL] disk-space-low" in server.transcript.messages[0]


def test_starttls_refuses_a_self_signed_certificate_when_no_ca_file_names_it(cert: tuple[Path, Path]) -> None:
    with smtp_responder("starttls", cert) as server, pytest.raises(ssl.SSLCertVerificationError):
        _sink(server.port, SmtpTls.STARTTLS).send(NOTICE)
    assert "STARTTLS" in server.transcript.commands
    assert not server.transcript.auth_seen
    assert server.transcript.messages == []


def test_starttls_with_the_ca_file_logs_in_and_sends_only_after_tls_is_up(cert: tuple[Path, Path]) -> None:
    with smtp_responder("starttls", cert) as server:
        _sink(server.port, SmtpTls.STARTTLS, ca_file=cert[0]).send(NOTICE)
    transcript = server.transcript
    assert transcript.auth_seen and not _password_on_the_wire(transcript)
    assert any(c.startswith("AUTH") for c in transcript.tls_commands)
    assert len(transcript.messages) == 1 and b"free_ratio: 0.1" in transcript.messages[0]


@pytest.mark.parametrize(("trusted", "delivered"), [(False, False), (True, True)])
def test_implicit_tls_verifies_the_certificate_before_logging_in(
        cert: tuple[Path, Path], trusted: bool, delivered: bool) -> None:
    with smtp_responder("ssl", cert) as server:
        sink = _sink(server.port, SmtpTls.SSL, ca_file=cert[0] if trusted else None)
        if delivered:
            sink.send(NOTICE)
        else:
            with pytest.raises(ssl.SSLCertVerificationError):
                sink.send(NOTICE)
    assert server.transcript.auth_seen is delivered
    assert len(server.transcript.messages) == int(delivered)


def test_a_refused_insecure_smtp_login_is_logged_and_the_email_delivery_stays_owed(
        pool: ConnectionPool, caplog: pytest.LogCaptureFixture) -> None:
    with pool.connection() as conn:
        alerts.raise_alert(conn, "disk-space-low", "critical", "disk full")
    with smtp_responder("plain") as server, caplog.at_level(logging.WARNING, logger="eva00.ops.notify"):
        assert Notifier(pool, [_sink(server.port, SmtpTls.STARTTLS)]).deliver_pending() == 0
    assert "does not offer STARTTLS" in caplog.text
    assert not server.transcript.auth_seen
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM alert_deliveries").fetchone() == (0,)
        assert conn.execute("SELECT notified_at FROM alerts").fetchone() == (None,)
