"""SMTP settings: which TLS mode the environment asks for, and a context that verifies."""

from __future__ import annotations

import ssl

import pytest

from eva00.ops.notify import NotifyConfig, SmtpTls, smtp_ssl_context, smtp_tls_mode

BASE = {"EVA00_ALERT_SMTP_HOST": "mail.example", "EVA00_ALERT_EMAIL_TO": "ops@x"}


def test_the_smtp_context_requires_a_valid_certificate_for_the_host_name() -> None:
    context = smtp_ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_a_missing_ca_file_is_an_error_not_a_silently_unverified_connection() -> None:
    with pytest.raises(FileNotFoundError):
        smtp_ssl_context("/nonexistent/ca.pem")


@pytest.mark.parametrize(("environ", "mode"), [
    ({}, SmtpTls.NONE),
    ({"EVA00_ALERT_SMTP_USER": "ops"}, SmtpTls.STARTTLS),
    ({"EVA00_ALERT_SMTP_STARTTLS": "true"}, SmtpTls.STARTTLS),
    ({"EVA00_ALERT_SMTP_TLS": "ssl"}, SmtpTls.SSL),
    ({"EVA00_ALERT_SMTP_TLS": "NONE", "EVA00_ALERT_SMTP_USER": "ops"}, SmtpTls.NONE),
])
def test_the_tls_mode_defaults_to_starttls_once_a_user_is_set(environ: dict[str, str], mode: SmtpTls) -> None:
    assert smtp_tls_mode(environ) is mode


def test_an_unknown_tls_mode_is_refused_with_the_accepted_values() -> None:
    with pytest.raises(ValueError, match="starttls, ssl or none"):
        smtp_tls_mode({"EVA00_ALERT_SMTP_TLS": "tls1.0"})


@pytest.mark.parametrize(("tls", "port"), [("ssl", 465), ("starttls", 25)])
def test_implicit_tls_defaults_to_port_465(tls: str, port: int) -> None:
    config = NotifyConfig.from_env({**BASE, "EVA00_ALERT_SMTP_TLS": tls,
                                    "EVA00_ALERT_SMTP_CA_FILE": "/ca.pem"})
    assert config.smtp is not None
    assert (config.smtp.port, config.smtp.ca_file) == (port, "/ca.pem")
