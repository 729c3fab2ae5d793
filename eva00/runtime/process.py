"""What every process entry point needs: its clients once PostgreSQL is ready, and signal wiring."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType

import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.runtime import db


def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.effective_redis_url, socket_timeout=30,
                                socket_connect_timeout=5, health_check_interval=30)


def wait_for_redis(client: redis.Redis, timeout_s: float, *,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    """Ping until Redis answers: a Redis just (re)started refuses connections, then answers
    LOADING while it reads its append-only file back. Raises the last error after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.ping()
            return
        except redis.AuthenticationError:
            raise  # a wrong password does not get better by waiting
        except (redis.ConnectionError, redis.TimeoutError):  # BusyLoadingError is one of them
            if time.monotonic() >= deadline:
                raise
            sleep(0.25)


def connect(settings: Settings, name: str, *, pool_size: int = 4) -> tuple[redis.Redis, ConnectionPool]:
    """Wait for PostgreSQL (applying the schema), then open the pool and the Redis client."""
    db.wait_until_ready(settings, timeout_s=float("inf"))
    return redis_client(settings), db.make_pool(settings, max_size=pool_size, name=name)


def on_terminate(callback: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        callback()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
