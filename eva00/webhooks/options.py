"""The webhook listener's settings in one frozen object, read from Settings.

The four limits below the Settings fields (debounce, threads, read deadline, requeue) use these
defaults until eva00/config.py carries them as EVA00_WEBHOOK_DEBOUNCE_TTL_S,
EVA00_WEBHOOK_THREADS, EVA00_WEBHOOK_READ_TIMEOUT_S and EVA00_WEBHOOK_REQUEUE_INTERVAL_S;
``from_settings`` reads them from Settings when they are there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eva00.config import Settings

MAX_BODY_BYTES = 64 * 1024
NAMESPACE = "eva-sync"  # Procore namespaces: lowercase a-z and dashes only
SECRETS_FILE_NAME = "webhook-secrets"


@dataclass(frozen=True)
class WebhookOptions:
    host: str
    port: int
    company_id: int
    secrets: tuple[str, ...]
    hmac_secret: str
    secrets_file: Path
    debounce_ttl_s: int = 3600
    threads: int = 8
    read_timeout_s: float = 10.0
    requeue_interval_s: float = 60.0
    requeue_grace_s: float = 30.0
    jobs_per_minute: int = 60  # flood cap: single-record jobs per minute, the rest fold into polls
    connection_limit: int = 200
    max_body_bytes: int = MAX_BODY_BYTES
    namespace: str = NAMESPACE

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookOptions:
        defaults = cls(host="", port=0, company_id=0, secrets=(), hmac_secret="",
                       secrets_file=Path())
        return cls(
            host=settings.webhook_host,
            port=settings.webhook_port,
            company_id=settings.company_id,
            secrets=settings.webhook_secrets,
            hmac_secret=settings.webhook_hmac_secret,
            secrets_file=settings.var_dir / SECRETS_FILE_NAME,
            debounce_ttl_s=int(getattr(settings, "webhook_debounce_ttl_s", defaults.debounce_ttl_s)),
            threads=int(getattr(settings, "webhook_threads", defaults.threads)),
            read_timeout_s=float(getattr(settings, "webhook_read_timeout_s",
                                         defaults.read_timeout_s)),
            requeue_interval_s=float(getattr(settings, "webhook_requeue_interval_s",
                                             defaults.requeue_interval_s)),
            jobs_per_minute=settings.webhook_jobs_per_minute,
        )
