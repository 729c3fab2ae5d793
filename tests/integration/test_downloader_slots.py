"""The download semaphore in Redis: N holders at most, leases of dead holders run out."""

from __future__ import annotations

import time

import pytest
import redis

from eva00.errors import Retryable
from eva00.stages.downloader import DownloadSlots


def test_no_more_than_the_limit_hold_a_slot_and_a_released_slot_is_reused(redis_client: redis.Redis) -> None:
    slots = DownloadSlots(redis_client, 2)
    assert slots.try_acquire("a") and slots.try_acquire("b")
    assert not slots.try_acquire("c")
    assert slots.try_acquire("a"), "a holder renewing its own slot was refused"
    slots.release("a")
    assert slots.try_acquire("c")


def test_the_lease_of_a_process_that_died_expires(redis_client: redis.Redis) -> None:
    slots = DownloadSlots(redis_client, 1, lease_s=0.2)
    assert slots.try_acquire("killed")
    assert not slots.try_acquire("next")
    time.sleep(0.3)
    assert slots.try_acquire("next")


def test_waiting_for_a_slot_gives_up_when_the_stage_stops(redis_client: redis.Redis) -> None:
    slots = DownloadSlots(redis_client, 1, poll_s=0.01)
    assert slots.try_acquire("busy")
    stops = iter([False, False, True])
    with pytest.raises(Retryable), slots.held("waiting", lambda: next(stops)):
        pass


def test_a_held_slot_is_released_even_when_the_work_fails(redis_client: redis.Redis) -> None:
    slots = DownloadSlots(redis_client, 1)
    with pytest.raises(RuntimeError), slots.held("worker", lambda: False):
        raise RuntimeError("transfer broke")
    assert slots.try_acquire("another")
