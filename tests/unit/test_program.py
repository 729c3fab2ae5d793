"""The common start of supervisord programs: a stop request reaches the loop however it listens,
the fetcher's inputs follow EVA00_FETCHER_STREAMS, and every program in supervisord.conf runs a
file that exists."""

from __future__ import annotations

import configparser
from unittest.mock import Mock

import pytest

from eva00 import keys
from eva00.config import ROOT_DIR, Settings
from eva00.runtime.program import Program
from eva00.stages.fetcher import fetcher_inputs


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


@pytest.mark.parametrize(("streams", "expected"), [
    ("priority,scheduled", [(keys.STREAM_SYNC_PRIORITY, keys.GROUP_FETCHERS),
                            (keys.STREAM_SYNC_SCHEDULED, keys.GROUP_FETCHERS)]),
    ("priority", [(keys.STREAM_SYNC_PRIORITY, keys.GROUP_FETCHERS)]),
    ("scheduled", [(keys.STREAM_SYNC_SCHEDULED, keys.GROUP_FETCHERS)]),
])
def test_a_fetcher_reads_the_streams_its_setting_names(streams: str, expected: list[tuple[str, str]]) -> None:
    assert fetcher_inputs(Settings.from_env({"EVA00_FETCHER_STREAMS": streams}, dotenv=None)) == expected


def _supervisord_programs() -> dict[str, configparser.SectionProxy]:
    config = configparser.RawConfigParser()
    config.read(ROOT_DIR / "supervisord.conf")
    return {section.split(":", 1)[1]: config[section] for section in config.sections()
            if section.startswith(("program:", "eventlistener:"))}


def test_every_supervisord_program_runs_a_process_file_that_exists() -> None:
    for name, section in _supervisord_programs().items():
        script = section["command"].split()[-1].replace("%(ENV_EVA00_ROOT)s/", "")
        assert (ROOT_DIR / script).is_file(), f"{name} runs {script}"


def test_the_priority_fetcher_is_the_fetcher_program_reading_only_the_priority_stream() -> None:
    section = _supervisord_programs()["fetcher_priority"]
    assert section["command"].endswith("/processes/fetcher.py")
    assert section["environment"] == 'EVA00_FETCHER_STREAMS="priority"'
