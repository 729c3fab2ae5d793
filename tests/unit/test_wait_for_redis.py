"""A Redis that was just restarted refuses connections, then answers LOADING while it reads its
append-only file: commands run right after `eva00 up` wait for it instead of failing."""

from __future__ import annotations

from typing import Any, cast

import pytest
import redis

from eva00.runtime.process import wait_for_redis


class Restarting:
    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.pings = 0

    def ping(self) -> bool:
        self.pings += 1
        if self.errors:
            raise self.errors.pop(0)
        return True


def test_a_redis_still_loading_its_data_is_waited_for() -> None:
    client = Restarting([redis.ConnectionError("refused"), redis.BusyLoadingError("LOADING"),
                         redis.BusyLoadingError("LOADING")])
    wait_for_redis(cast(Any, client), 10.0, sleep=lambda _s: None)
    assert client.pings == 4


def test_a_redis_that_never_answers_fails_with_its_last_error_after_the_timeout() -> None:
    client = Restarting([redis.BusyLoadingError("LOADING")] * 1000)
    with pytest.raises(redis.BusyLoadingError):
        wait_for_redis(cast(Any, client), 0.3)
    assert 1 < client.pings < 10


def test_a_refused_password_is_not_waited_for() -> None:
    client = Restarting([redis.AuthenticationError("WRONGPASS")])
    with pytest.raises(redis.AuthenticationError):
        wait_for_redis(cast(Any, client), 10.0, sleep=lambda _s: None)
    assert client.pings == 1
