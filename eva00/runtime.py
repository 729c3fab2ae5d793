"""What every process entry point needs: logging with secret redaction, clients, readiness."""

from __future__ import annotations

import logging
import re
import signal
import sys
from collections.abc import Callable, Iterable
from types import FrameType

import redis
from psycopg_pool import ConnectionPool

from eva00 import db
from eva00.config import Settings

# Query parameters of signed storage URLs and bearer tokens: secrets wherever they appear.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)([?&](?:sig|signature|x-amz-signature|token|access_token|refresh_token|code)=)[^&\s\"']+"),
    re.compile(r"(?i)(\"(?:access_token|refresh_token|client_secret)\"\s*:\s*\")[^\"]+"),
)


class RedactingFilter(logging.Filter):
    """Defence in depth: whatever a log line carries, known secrets and token shapes are masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(r"\1[redacted]", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.redact(message), None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def setup_logging(name: str, settings: Settings | None = None, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"))
    secrets = [settings.procore_client_secret, *settings.webhook_secrets,
               settings.webhook_hmac_secret] if settings else []
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.effective_redis_url, socket_timeout=30,
                                socket_connect_timeout=5, health_check_interval=30)


def connect(settings: Settings, name: str, *, pool_size: int = 4) -> tuple[redis.Redis, ConnectionPool]:
    """Wait for PostgreSQL (applying the schema), then open the pool and the Redis client."""
    db.wait_until_ready(settings, timeout_s=float("inf"))
    return redis_client(settings), db.make_pool(settings, max_size=pool_size, name=name)


def on_terminate(callback: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        callback()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
