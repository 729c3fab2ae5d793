"""A real stage process (tests/process/stage_fixture_program.py) against real Redis and PostgreSQL:
kill -9 mid-message and restart leaves exactly one effect and one downstream entry; SIGTERM, idle
or mid-message, exits 0 with nothing pending and the in-flight message committed once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).with_name("stage_fixture_program.py")
IN, GROUP, OUT = "test:in", "test-group", "test:out"
CONSUMER = "fixture-stage-1"


def _wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def _item(item_id: str) -> dict[str, bytes]:
    return {"t": b"test.process.item", "v": b"1", "d": f'{{"item_id": "{item_id}"}}'.encode()}


class Program:
    """Starts the fixture stage as a real process; keeps its stderr for failure messages."""

    def __init__(self, tmp_path: Path, database_url: str, redis_url: str, owner_url: str) -> None:
        self.tmp_path = tmp_path
        self.base_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DATABASE_URL": database_url,
            "EVA00_DATABASE_OWNER_URL": owner_url,
            "REDIS_URL": redis_url,
            "SUPERVISOR_PROCESS_NAME": CONSUMER,
            "EVA00_STREAM_BLOCK_MS": "300",
            "EVA00_CLAIM_IDLE_MS": "60000",  # a restart must find its entry as its own pending
            "EVA00_MAX_DELIVERIES": "5",
            "EVA00_OUTAGE_BACKOFF_CAP_S": "0.5",
            "STAGE_IN": IN, "STAGE_GROUP": GROUP, "STAGE_OUT": OUT,
        }
        self.runs: list[tuple[subprocess.Popen[bytes], Path]] = []

    @property
    def marker(self) -> Path:
        return self.tmp_path / "marker"

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        number = len(self.runs)
        ready = self.tmp_path / f"ready-{number}"
        log = self.tmp_path / f"stage-{number}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(PROGRAM)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**self.base_env, "STAGE_READY": str(ready), "STAGE_MARKER": str(self.marker),
                     **env})
        self.runs.append((process, log))
        _wait_for(lambda: ready.exists() or process.poll() is not None, 20, "the stage to start")
        assert process.poll() is None, self.logs()
        return process

    def logs(self) -> str:
        return "\n".join(f"--- run {n}\n{log.read_text(errors='replace')[-3000:]}"
                         for n, (_p, log) in enumerate(self.runs))

    def stop_all(self) -> None:
        for process, _log in self.runs:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def program(tmp_path: Path, database_url: str, redis_url: str, owner_database_url: str) -> Iterator[Program]:
    runner = Program(tmp_path, database_url, redis_url, owner_database_url)
    yield runner
    runner.stop_all()


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def _effects(conn: psycopg.Connection[Any]) -> list[str]:
    return [row[0] for row in conn.execute("SELECT item_id FROM stage_effects ORDER BY 1")]


def _commits(conn: psycopg.Connection[Any]) -> list[str]:
    return [row[0] for row in conn.execute("SELECT item_id FROM stage_commits ORDER BY 1")]


def _downstream(client: redis.Redis) -> list[bytes]:
    return [fields[b"d"] for _id, fields in client.xrange(OUT)]


def _pending(client: redis.Redis) -> int:
    return int(client.xpending(IN, GROUP)["pending"])


def _terminate(process: subprocess.Popen[bytes], program: Program) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the stage did not exit within 10 s of SIGTERM\n" + program.logs()) from None


@pytest.mark.parametrize("killed_at", ["handler", "forward"])
def test_a_stage_killed_mid_message_and_restarted_leaves_exactly_one_effect_and_one_downstream_entry(
        program: Program, conn: psycopg.Connection[Any], redis_client: redis.Redis,
        killed_at: str) -> None:
    # "handler": killed inside the transaction, before COMMIT; "forward": after COMMIT, before
    # the MULTI that adds the downstream entry and acknowledges the upstream one.
    first = program.start(STAGE_SLEEP_AT=killed_at, STAGE_SLEEP_S="30")
    redis_client.xadd(IN, _item("a"))
    _wait_for(program.marker.exists, 10, "the stage to be mid-message")
    first.kill()
    assert first.wait(10) == -signal.SIGKILL
    assert _downstream(redis_client) == []
    assert _pending(redis_client) == 1
    assert _effects(conn) == ([] if killed_at == "handler" else ["a"])

    second = program.start()
    _wait_for(lambda: _pending(redis_client) == 0, 10, "the restarted stage to acknowledge")
    assert _effects(conn) == ["a"], program.logs()
    assert _downstream(redis_client) == [b'{"item_id":"a"}']
    # Rolled back by the kill before COMMIT; committed twice (idempotently) when killed after.
    assert _commits(conn) == (["a"] if killed_at == "handler" else ["a", "a"])
    assert _terminate(second, program) == 0


def test_sigterm_while_idle_exits_0_with_nothing_pending(
        program: Program, redis_client: redis.Redis, conn: psycopg.Connection[Any]) -> None:
    process = program.start()
    redis_client.xadd(IN, _item("a"))
    _wait_for(lambda: _effects(conn) == ["a"] and _pending(redis_client) == 0, 10,
              "the stage to handle the message")
    time.sleep(0.2)  # back in its blocking read
    started = time.monotonic()
    assert _terminate(process, program) == 0, program.logs()
    assert time.monotonic() - started < 3  # the read blocks 300 ms at most
    assert _pending(redis_client) == 0
    assert _downstream(redis_client) == [b'{"item_id":"a"}']


def test_sigterm_mid_message_exits_0_with_the_message_committed_once_and_nothing_pending(
        program: Program, redis_client: redis.Redis, conn: psycopg.Connection[Any]) -> None:
    for item_id in ("a", "b", "c"):  # one batch: the stage reads all three at once
        redis_client.xadd(IN, _item(item_id))
    process = program.start(STAGE_SLEEP_AT="handler", STAGE_SLEEP_S="1", STAGE_SLEEP_ONCE="1")
    _wait_for(program.marker.exists, 10, "the stage to be mid-message")
    assert _commits(conn) == []  # the first message's transaction is still open
    assert _terminate(process, program) == 0, program.logs()
    assert _pending(redis_client) == 0
    assert _effects(conn) == ["a", "b", "c"]
    assert _commits(conn) == ["a", "b", "c"]
    assert sorted(_downstream(redis_client)) == [b'{"item_id":"%s"}' % i for i in (b"a", b"b", b"c")]
