"""The common start of supervisord programs: a stop request reaches the loop however it listens."""

from __future__ import annotations

from unittest.mock import Mock

import pytest

from eva00.config import Settings
from eva00.runtime.program import Program


def _program() -> Program:
    return Program("test", Settings(), Mock(), Mock())


def test_a_stop_request_sets_the_event_and_tells_every_registered_loop() -> None:
    program, told = _program(), []
    program.on_stop(lambda: told.append("first"))
    program.on_stop(lambda: told.append("second"))
    assert not program.stopping()
    program.request_stop()
    assert program.stopping() and program.stop.is_set() and told == ["first", "second"]


def test_a_stop_requested_before_the_loop_registered_ends_the_program_with_0() -> None:
    program = _program()
    program.request_stop()
    with pytest.raises(SystemExit) as caught:
        program.on_stop(lambda: None)
    assert caught.value.code == 0


def test_closing_a_program_closes_its_pool_and_redis_client() -> None:
    program = _program()
    program.close()
    program.pool.close.assert_called_once_with()  # type: ignore[attr-defined]
    program.redis.close.assert_called_once_with()  # type: ignore[attr-defined]

