"""Alert notifications: the log, SMTP email and a generic (Slack-compatible) webhook, delivered
from the alerts table.

Delivery guarantee: at least once per (alert, event, sink). The queue is the table itself: an
alert whose `notified_at` (or, once resolved, `resolved_notified_at`) is NULL still owes a notice.
Each sink's success is recorded in `alert_deliveries` right after the send, so a sink that failed
is retried alone on the next pass and a crash between a send and its row repeats one notice at
most; nothing is ever lost. A sink can ask for a minimum severity (email for warnings and worse).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from enum import Enum
from typing import Any, Protocol

import requests
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Notice:
    alert_id: int
    event: str  # opened | resolved
    key: str
    severity: str
    message: str
    details: dict[str, Any]

    @property
    def subject(self) -> str:
        state = "RESOLVED" if self.event == "resolved" else self.severity.upper()
        return f"[eva00 {state}] {self.key}"

    @property
    def text(self) -> str:
        return f"{self.subject}: {self.message}"


class Sink(Protocol):
    name: str
    min_severity: str

    def send(self, notice: Notice) -> None: ...


class LogSink:
    name = "log"
    min_severity = "info"

    def send(self, notice: Notice) -> None:
        opened_critical = notice.severity == "critical" and notice.event == "opened"
        level = logging.CRITICAL if opened_critical else logging.WARNING
        log.log(level, "%s %s", notice.text, notice.details or "")


class SmtpTls(str, Enum):
    """EVA00_ALERT_SMTP_TLS: how the connection to the SMTP server is protected."""

    STARTTLS = "starttls"  # plain connect, then STARTTLS (refused if the server does not offer it)
    SSL = "ssl"  # implicit TLS from the first byte (SMTPS, port 465)
    NONE = "none"  # plaintext: only for a relay that needs no credentials


class InsecureSmtp(smtplib.SMTPException):
    """The connection is not (or could not be made) TLS-protected where it must be."""


def smtp_ssl_context(ca_file: str = "") -> ssl.SSLContext:
    """Certificate and host name checked against the system's CAs, or only ``ca_file`` (a private
    CA or a self-signed server certificate) when it is set."""
    return ssl.create_default_context(cafile=ca_file or None)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "eva00@localhost"
    recipients: tuple[str, ...] = ()
    username: str = ""
    password: str = ""
    tls: SmtpTls = SmtpTls.NONE
    ca_file: str = ""
    timeout_s: float = 15.0


class EmailSink:
    """Sends over STARTTLS or implicit TLS with a verifying context; credentials never cross a
    connection that is not TLS (InsecureSmtp, so the delivery fails and is retried)."""

    name = "email"

    def __init__(self, config: SmtpConfig, min_severity: str = "warning",
                 smtp_factory: Callable[..., smtplib.SMTP] = smtplib.SMTP,
                 smtp_ssl_factory: Callable[..., smtplib.SMTP] = smtplib.SMTP_SSL) -> None:
        self.config, self.min_severity, self.smtp_factory = config, min_severity, smtp_factory
        self.smtp_ssl_factory = smtp_ssl_factory

    def send(self, notice: Notice) -> None:
        config = self.config
        if config.username and config.tls is SmtpTls.NONE:
            raise InsecureSmtp("EVA00_ALERT_SMTP_TLS=none with a user: refusing to send the SMTP"
                               " password over plaintext (use starttls or ssl)")
        with self._connect() as smtp:
            if config.tls is SmtpTls.STARTTLS:
                self._start_tls(smtp)
            if config.username:
                smtp.login(config.username, config.password)
            smtp.send_message(self._message(notice))

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        if config.tls is SmtpTls.SSL:
            return self.smtp_ssl_factory(config.host, config.port, timeout=config.timeout_s,
                                         context=smtp_ssl_context(config.ca_file))
        return self.smtp_factory(config.host, config.port, timeout=config.timeout_s)

    def _start_tls(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            raise InsecureSmtp(f"{self.config.host}:{self.config.port} does not offer STARTTLS;"
                               " refusing to continue in plaintext")
        smtp.starttls(context=smtp_ssl_context(self.config.ca_file))
        smtp.ehlo()

    def _message(self, notice: Notice) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = notice.subject
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.recipients)
        body = [notice.message, ""] + [f"{k}: {v}" for k, v in notice.details.items()]
        mail.set_content("\n".join(body))
        return mail


class WebhookSink:
    """POSTs {"text": ...} (what Slack, Mattermost and Teams incoming webhooks accept) plus the
    alert's fields under "eva00" for generic receivers."""

    name = "webhook"

    def __init__(self, url: str, min_severity: str = "warning", timeout_s: float = 10.0,
                 session: requests.Session | None = None) -> None:
        self.url, self.min_severity, self.timeout_s = url, min_severity, timeout_s
        self.session = session or requests.Session()

    def send(self, notice: Notice) -> None:
        body = {"text": notice.text, "eva00": {"key": notice.key, "event": notice.event,
                                               "severity": notice.severity, "message": notice.message,
                                               "details": notice.details}}
        response = self.session.post(self.url, json=body, timeout=self.timeout_s)
        response.raise_for_status()


@dataclass(frozen=True)
class NotifyConfig:
    """Sink settings (environment variables named in from_env; all optional)."""

    smtp: SmtpConfig | None = None
    email_min_severity: str = "warning"
    webhook_url: str = ""
    webhook_min_severity: str = "warning"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> NotifyConfig:
        host = environ.get("EVA00_ALERT_SMTP_HOST", "")
        recipients = tuple(r.strip() for r in environ.get("EVA00_ALERT_EMAIL_TO", "").split(",") if r.strip())
        smtp = _smtp_from_env(environ, host, recipients) if host and recipients else None
        return cls(smtp=smtp, email_min_severity=environ.get("EVA00_ALERT_EMAIL_MIN_SEVERITY", "warning"),
                   webhook_url=environ.get("EVA00_ALERT_WEBHOOK_URL", ""),
                   webhook_min_severity=environ.get("EVA00_ALERT_WEBHOOK_MIN_SEVERITY", "warning"))


def smtp_tls_mode(environ: Mapping[str, str]) -> SmtpTls:
    """EVA00_ALERT_SMTP_TLS, else starttls when EVA00_ALERT_SMTP_STARTTLS (the older switch) is on or
    a user is set, else none. An unknown value raises ValueError."""
    value = environ.get("EVA00_ALERT_SMTP_TLS", "").strip().lower()
    if value:
        try:
            return SmtpTls(value)
        except ValueError:
            raise ValueError(f"EVA00_ALERT_SMTP_TLS={value!r}: expected starttls, ssl or none") from None
    legacy = environ.get("EVA00_ALERT_SMTP_STARTTLS", "").lower() in ("1", "true", "yes")
    return SmtpTls.STARTTLS if legacy or environ.get("EVA00_ALERT_SMTP_USER") else SmtpTls.NONE


def _smtp_from_env(environ: Mapping[str, str], host: str, recipients: tuple[str, ...]) -> SmtpConfig:
    tls = smtp_tls_mode(environ)
    default_port = "465" if tls is SmtpTls.SSL else "25"
    return SmtpConfig(
        host=host, port=int(environ.get("EVA00_ALERT_SMTP_PORT", default_port)),
        sender=environ.get("EVA00_ALERT_EMAIL_FROM", "eva00@localhost"), recipients=recipients,
        username=environ.get("EVA00_ALERT_SMTP_USER", ""),
        password=environ.get("EVA00_ALERT_SMTP_PASSWORD", ""),
        tls=tls, ca_file=environ.get("EVA00_ALERT_SMTP_CA_FILE", ""))


def build_sinks(config: NotifyConfig) -> list[Sink]:
    sinks: list[Sink] = [LogSink()]
    if config.smtp is not None:
        sinks.append(EmailSink(config.smtp, config.email_min_severity))
    if config.webhook_url:
        sinks.append(WebhookSink(config.webhook_url, config.webhook_min_severity))
    return sinks


_PENDING_SQL = (
    "SELECT id, alert_key, severity, message, details, status, notified_at IS NULL,"
    " status = 'resolved' AND resolved_notified_at IS NULL FROM alerts"
    " WHERE notified_at IS NULL OR (status = 'resolved' AND resolved_notified_at IS NULL)"
    " ORDER BY id LIMIT %s")


class Notifier:
    def __init__(self, pool: ConnectionPool, sinks: Sequence[Sink], *, batch: int = 100) -> None:
        self.pool, self.sinks, self.batch = pool, list(sinks), batch

    def deliver_pending(self) -> int:
        """Send every owed notice; returns how many (alert, event) pairs are now fully delivered."""
        with self.pool.connection() as conn:
            rows = conn.execute(_PENDING_SQL, (self.batch,)).fetchall()
        done = 0
        for alert_id, key, severity, message, details, _status, owes_open, owes_resolve in rows:
            events = (["opened"] if owes_open else []) + (["resolved"] if owes_resolve else [])
            for event in events:
                notice = Notice(alert_id, event, key, severity, message, details or {})
                if not self._deliver(notice):
                    break  # keep "resolved" after "opened" for every sink
                done += 1
        return done

    def _deliver(self, notice: Notice) -> bool:
        with self.pool.connection() as conn:
            delivered = {r[0] for r in conn.execute(
                "SELECT sink FROM alert_deliveries WHERE alert_id = %s AND event = %s",
                (notice.alert_id, notice.event))}
        complete = True
        for sink in self.sinks:
            if sink.name in delivered or SEVERITY_RANK[notice.severity] < SEVERITY_RANK[sink.min_severity]:
                continue
            try:
                sink.send(notice)
            except (OSError, smtplib.SMTPException, requests.RequestException) as exc:
                log.warning("alert %s (%s) not delivered to %s: %s", notice.key, notice.event, sink.name, exc)
                complete = False
                continue
            self._record(notice, sink.name)
        if complete:
            column = "notified_at" if notice.event == "opened" else "resolved_notified_at"
            with self.pool.connection() as conn:
                conn.execute(f"UPDATE alerts SET {column} = now() WHERE id = %s", (notice.alert_id,))
        return complete

    def _record(self, notice: Notice, sink: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("INSERT INTO alert_deliveries (alert_id, event, sink) VALUES (%s, %s, %s)"
                         " ON CONFLICT DO NOTHING", (notice.alert_id, notice.event, sink))

