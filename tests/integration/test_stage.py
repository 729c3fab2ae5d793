"""The stage loop against real Redis and PostgreSQL, driven one step at a time: an entry is
acknowledged (and its downstream entries added) only after its transaction committed; failures
stay pending, are redelivered and end in the dead letters (stream and table) with their error
while the stage goes on; poison goes there at once; SIGTERM finishes the batch; FLUSHALL and
Redis or PostgreSQL restarts are waited out without losing or doubling an effect."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.errors import Fatal, Poison, Retryable, Skip
from eva00.messages import Message, decode, message
from eva00.runtime.bus import Delivery, Outgoing
from eva00.runtime.middleware import Middleware
from eva00.runtime.stage import Stage
from tests.conftest import Stack

IN, PRIORITY, OUT = "test:stage:in", "test:stage:priority", "test:stage:out"
GROUP, CONSUMER = "workers", "stage-1"

TABLES = """
CREATE TABLE effects (item_id text PRIMARY KEY);
CREATE TABLE commits (item_id text NOT NULL, entry_id text NOT NULL, deliveries int NOT NULL);
CREATE TABLE checked_at_commit (item_id text UNIQUE DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE indexed_titles (title text UNIQUE);
"""


@message("test.stage.item")
@dataclasses.dataclass(frozen=True)
class Item(Message):
    item_id: str


Hook = Callable[[psycopg.Connection[Any], Delivery], None]


class Recorder:
    """The test handler: one idempotent effect row, one row per committed handling (to count
    commits), then an optional hook per item (which may raise), then one downstream entry."""

    accepts: tuple[type[Message], ...] = (Item,)

    def __init__(self, hooks: dict[str, Hook] | None = None) -> None:
        self.hooks = hooks or {}
        self.calls: list[tuple[str, int]] = []

    def __call__(self, conn: psycopg.Connection[Any], msg: Message,
                 delivery: Delivery) -> Sequence[Outgoing]:
        assert isinstance(msg, Item)
        self.calls.append((msg.item_id, delivery.times_delivered))
        conn.execute("INSERT INTO effects (item_id) VALUES (%s) ON CONFLICT DO NOTHING", (msg.item_id,))
        conn.execute("INSERT INTO commits VALUES (%s, %s, %s)",
                     (msg.item_id, delivery.entry_id, delivery.times_delivered))
        if hook := self.hooks.get(msg.item_id):
            hook(conn, delivery)
        return [(OUT, Item(msg.item_id))]

    def items(self) -> list[str]:
        return [item_id for item_id, _ in self.calls]


def raising(exc: BaseException) -> Hook:
    def hook(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
        raise exc

    return hook


class UnexpectedWait(BaseException):
    """Not an Exception, so the stage's loop boundary cannot swallow it."""


def no_outage_expected(seconds: float) -> None:
    raise UnexpectedWait(f"the stage waited {seconds:.2f} s for an outage there was not")


@pytest.fixture
def pool(database_url: str, owner_database_url: str) -> Iterator[ConnectionPool]:
    # Made by the schema's owner like every table; the stage works on them as the app role.
    with psycopg.connect(owner_database_url, autocommit=True) as conn:
        conn.execute(TABLES)
        conn.execute("GRANT ALL ON effects, commits, checked_at_commit, indexed_titles TO eva00")
    with ConnectionPool(database_url, min_size=1, max_size=2, timeout=1, open=True,
                        check=ConnectionPool.check_connection) as connections:
        yield connections


@pytest.fixture
def make_stage(settings: Settings, redis_client: redis.Redis,
               pool: ConnectionPool) -> Callable[..., Stage]:
    def make(handler: Recorder, *, inputs: Sequence[tuple[str, str]] = ((IN, GROUP),),
             sleep: Callable[[float], None] = no_outage_expected,
             middleware: Sequence[Middleware] = (), **changes: Any) -> Stage:
        stage = Stage("test", settings.replace(**changes), redis_client, pool, inputs, handler,
                      middleware=middleware, consumer=CONSUMER, sleep=sleep, reclaim_every_s=0)
        for stream, group in inputs:  # as run() does before its first step
            stage.bus.ensure_group(stream, group)
        return stage

    return make


class Db:
    def __init__(self, database_url: str) -> None:
        self.url = database_url

    def rows(self, sql: str) -> list[Any]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return [row[0] if len(row) == 1 else row for row in conn.execute(sql)]

    def effects(self) -> list[str]:
        return self.rows("SELECT item_id FROM effects ORDER BY 1")

    def commits(self) -> list[str]:
        return self.rows("SELECT item_id FROM commits ORDER BY 1")

    def dead_letters(self) -> list[Any]:
        return self.rows("SELECT stream, group_name, message_id, fields, error, deliveries"
                         " FROM dead_letters ORDER BY id")


@pytest.fixture
def db(database_url: str) -> Db:
    return Db(database_url)


def add(client: redis.Redis, *item_ids: str, stream: str = IN) -> list[str]:
    return [client.xadd(stream, Item(i).to_fields()).decode() for i in item_ids]


def downstream(client: redis.Redis) -> list[str]:
    return [decode(fields).item_id for _id, fields in client.xrange(OUT)]


def pending(client: redis.Redis, stream: str = IN) -> dict[str, int]:
    answer = client.xpending_range(stream, GROUP, "-", "+", 100)
    return {item["message_id"].decode(): int(item["times_delivered"]) for item in answer}


def dead_letter_stream(client: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _id, fields in client.xrange(keys.STREAM_DEAD_LETTERS)]


def step_until(stage: Stage, done: Callable[[], bool], *, steps: int = 20, pause_s: float = 0.01) -> None:
    for _ in range(steps):
        if done():
            return
        stage.step()
        time.sleep(pause_s)
    assert done(), f"not done after {steps} steps"


# --- acknowledged only after COMMIT ---

def test_a_handler_that_raises_after_its_insert_leaves_no_row_and_its_entry_pending(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    stage = make_stage(Recorder({"a": raising(RuntimeError("after the insert"))}))
    [entry_id] = add(redis_client, "a")
    assert stage.step() == 1
    assert db.effects() == [] and db.commits() == []
    assert pending(redis_client) == {entry_id: 1}
    assert downstream(redis_client) == []
    assert stage.stats.failed == 1 and "after the insert" in stage.stats.errors[0]


def test_a_handled_message_is_committed_before_it_is_acknowledged_and_forwarded(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    stage = make_stage(Recorder())
    add(redis_client, "a")
    seen_at_forward: list[tuple[list[str], int]] = []
    forward = stage.bus.forward

    def checking_forward(delivery: Delivery | None, outgoing: Sequence[Outgoing]) -> None:
        # Seen from another session: the effect is committed, the entry still pending.
        seen_at_forward.append((db.effects(), len(pending(redis_client))))
        forward(delivery, outgoing)

    stage.bus.forward = checking_forward
    assert stage.step() == 1
    assert seen_at_forward == [(["a"], 1)]
    assert db.effects() == ["a"] and db.commits() == ["a"]
    assert pending(redis_client) == {}
    assert downstream(redis_client) == ["a"]
    assert stage.stats.handled == 1


def test_a_commit_that_fails_forwards_nothing_and_leaves_the_entry_pending(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    def violate_at_commit(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
        conn.execute("INSERT INTO checked_at_commit VALUES ('x'), ('x')")  # deferred: COMMIT fails

    stage = make_stage(Recorder({"a": violate_at_commit}))
    [entry_id] = add(redis_client, "a")
    assert stage.step() == 1
    assert db.effects() == [] and db.commits() == []
    assert pending(redis_client) == {entry_id: 1}
    assert downstream(redis_client) == []
    assert "UniqueViolation" in stage.stats.errors[0]


# --- redelivery, reclaiming, dead letters ---

def test_a_dead_peers_entries_are_reclaimed_and_handled_once_idle_for_claim_idle_ms(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    handler = Recorder()
    stage = make_stage(handler, claim_idle_ms=300)
    ids = add(redis_client, "a", "b")
    redis_client.xreadgroup(GROUP, "peer-dead", {IN: ">"})  # read, then the peer died
    assert stage.step() == 0  # not idle long enough yet
    assert set(pending(redis_client)) == set(ids)
    time.sleep(0.35)
    assert stage.step() == 2
    assert handler.calls == [("a", 2), ("b", 2)]
    assert stage.stats.reclaimed == 2
    assert db.effects() == ["a", "b"] and downstream(redis_client) == ["a", "b"]
    assert pending(redis_client) == {}


def test_a_live_stage_working_longer_than_claim_idle_ms_keeps_its_batch_from_its_peers(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db,
        settings: Settings, pool: ConnectionPool) -> None:
    def slow(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
        time.sleep(1.2)  # e.g. waiting for the rate limiter, four times claim_idle_ms

    handler = Recorder({"a": slow, "b": slow})
    stage = make_stage(handler, claim_idle_ms=300, stream_batch=2)
    peer_handler = Recorder()
    peer = Stage("test", settings.replace(claim_idle_ms=300), redis_client, pool, [(IN, GROUP)],
                 peer_handler, consumer="peer", sleep=time.sleep, reclaim_every_s=0)
    ids = add(redis_client, "a", "b")
    worker = threading.Thread(target=stage.step)
    worker.start()
    # The peer starts only once the stage holds the batch (else it may simply read it first).
    deadline = time.monotonic() + 10
    while set(pending(redis_client)) != set(ids):
        assert time.monotonic() < deadline, "the stage never read its batch"
        time.sleep(0.01)
    while worker.is_alive():
        peer.step()  # reclaims whatever looks idle for 300 ms
        time.sleep(0.05)
    worker.join()
    assert peer_handler.calls == [] and peer.stats.reclaimed == 0
    assert handler.calls == [("a", 1), ("b", 1)]
    assert db.effects() == ["a", "b"] and pending(redis_client) == {}


@pytest.mark.parametrize("error", [RuntimeError("boom"), Retryable("boom", delay_s=1.0)],
                         ids=["exception", "retryable"])
def test_a_failing_message_is_dead_lettered_with_its_error_after_max_deliveries_and_the_stage_goes_on(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db, error: Exception) -> None:
    handler = Recorder({"bad": raising(error)})
    stage = make_stage(handler, claim_idle_ms=1)  # redelivered by the next step's reclaim pass
    [bad_id, _good] = add(redis_client, "bad", "good-1")
    step_until(stage, lambda: bool(dead_letter_stream(redis_client)))

    assert [n for item, n in handler.calls if item == "bad"] == [1, 2, 3]  # max_deliveries is 3
    [copied] = dead_letter_stream(redis_client)
    assert decode(copied) == Item("bad")
    assert (copied[b"dl_id"], copied[b"dl_deliveries"]) == (bad_id.encode(), b"3")
    assert b"boom" in copied[b"dl_error"]
    [(stream, group, message_id, fields, text, deliveries)] = db.dead_letters()
    assert (stream, group, message_id, deliveries) == (IN, GROUP, bad_id, 3)
    assert fields["t"] == "test.stage.item" and "boom" in text
    assert stage.stats.dead_lettered == 1

    add(redis_client, "good-2")
    step_until(stage, lambda: db.effects() == ["good-1", "good-2"])
    assert pending(redis_client) == {}
    assert downstream(redis_client) == ["good-1", "good-2"]
    assert handler.items().count("bad") == 3


def test_after_a_restart_an_own_pending_entry_that_fails_again_waits_for_the_reclaim_pass(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    handler = Recorder({"a": raising(Retryable("503 from Procore"))})
    stage = make_stage(handler, claim_idle_ms=60_000)
    [entry_id] = add(redis_client, "a")
    redis_client.xreadgroup(GROUP, CONSUMER, {IN: ">"})  # this consumer's previous life crashed
    for _ in range(3):
        stage.step()
    assert handler.calls == [("a", 2)]  # not retried at once until its deliveries are used up
    assert pending(redis_client) == {entry_id: 2}
    assert db.dead_letters() == []


def test_a_message_delivered_more_than_max_deliveries_times_is_dead_lettered_without_handling(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    handler = Recorder()
    stage = make_stage(handler, claim_idle_ms=50)
    [entry_id] = add(redis_client, "crasher")
    for start in (">", "0", "0"):  # a peer that crashed three times while handling it
        redis_client.xreadgroup(GROUP, "peer-crashing", {IN: start})
    time.sleep(0.08)
    assert stage.step() == 1
    assert handler.calls == []
    [(_stream, _group, message_id, _fields, text, deliveries)] = db.dead_letters()
    assert (message_id, deliveries) == (entry_id, 4) and "4 times" in text
    assert pending(redis_client) == {} and downstream(redis_client) == []


POISON = {
    "unknown type": {b"t": b"test.stage.nonsense", b"v": b"1", b"d": b'{"item_id": "x"}'},
    "wrong version": {b"t": b"test.stage.item", b"v": b"2", b"d": b'{"item_id": "x"}'},
    "not JSON": {b"t": b"test.stage.item", b"v": b"1", b"d": b"{item_id: x"},
    "unknown field": {b"t": b"test.stage.item", b"v": b"1", b"d": b'{"item_id": "x", "extra": 1}'},
    "no fields of a message": {b"hello": b"world"},
    "NUL bytes, which PostgreSQL text cannot hold": {b"t": b"nul\x00type", b"v": b"1", b"d": b"\x00"},
    "field names and values that are not UTF-8": {b"t\xff": b"\xfe", b"t": b"item\xff", b"d": b"\xff"},
}


@message("test.stage.other")
@dataclasses.dataclass(frozen=True)
class Other(Message):
    item_id: str


def test_a_message_of_a_type_the_handler_does_not_accept_is_dead_lettered_naming_its_type(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    handler = Recorder()
    stage = make_stage(handler)
    other_id = redis_client.xadd(IN, Other("x").to_fields()).decode()  # type: ignore[arg-type]
    add(redis_client, "next")
    assert stage.step() == 2
    assert handler.items() == ["next"], "the handler never saw the other type"
    [(stream, _group, message_id, _stored, text, deliveries)] = db.dead_letters()
    assert (stream, message_id, deliveries) == (IN, other_id, 1)
    assert text == ("poison: the test stage does not accept test.stage.other messages"
                    " (it takes test.stage.item)")
    assert pending(redis_client) == {} and db.effects() == ["next"]


@pytest.mark.parametrize("fields", POISON.values(), ids=POISON.keys())
def test_a_poison_message_is_dead_lettered_on_its_first_delivery_and_the_next_one_is_handled(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db,
        fields: dict[bytes, bytes]) -> None:
    handler = Recorder()
    stage = make_stage(handler)
    poison_id = redis_client.xadd(IN, fields).decode()
    add(redis_client, "next")
    assert stage.step() == 2
    assert handler.items() == ["next"]
    [(stream, _group, message_id, stored, text, deliveries)] = db.dead_letters()
    assert (stream, message_id, deliveries) == (IN, poison_id, 1)
    assert text.startswith("poison:") and len(stored) == len(fields)
    [copied] = dead_letter_stream(redis_client)
    assert copied[b"dl_deliveries"] == b"1" and copied[b"dl_id"] == poison_id.encode()
    assert pending(redis_client) == {}
    assert db.effects() == ["next"] and downstream(redis_client) == ["next"]


@pytest.mark.parametrize("error", [Poison("cannot be understood"), Fatal("403 on the project")],
                         ids=["poison", "fatal"])
def test_a_handler_that_declares_its_message_hopeless_rolls_back_and_dead_letters_it_at_once(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db, error: Exception) -> None:
    stage = make_stage(Recorder({"a": raising(error)}))
    add(redis_client, "a")
    stage.step()
    assert db.effects() == [] and downstream(redis_client) == []
    [(*_ignored, text, deliveries)] = db.dead_letters()
    assert str(error) in text and deliveries == 1
    assert pending(redis_client) == {}


def test_a_skipped_message_is_acknowledged_without_forwarding_or_keeping_its_writes(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    stage = make_stage(Recorder({"a": raising(Skip("duplicate"))}))
    add(redis_client, "a")
    stage.step()
    assert db.effects() == [] and db.dead_letters() == [] and downstream(redis_client) == []
    assert pending(redis_client) == {}


def test_a_handlers_os_error_fails_its_message_instead_of_stalling_the_stage(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    stage = make_stage(Recorder({"a": raising(FileNotFoundError("/tmp/gone.part"))}))
    [entry_id, _b] = add(redis_client, "a", "b")
    assert stage.step() == 2  # no in-process "outage" retries: no_outage_expected would raise
    assert pending(redis_client) == {entry_id: 1}
    assert db.effects() == ["b"] and "FileNotFoundError" in stage.stats.errors[0]


def test_a_deadlock_is_retried_at_once_and_logged_as_a_conflict_not_an_outage(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db,
        caplog: pytest.LogCaptureFixture) -> None:
    deadlocks = [psycopg.errors.DeadlockDetected("deadlock detected")]

    def deadlock_once(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
        if deadlocks:
            raise deadlocks.pop()

    waits: list[float] = []
    stage = make_stage(Recorder({"a": deadlock_once}), sleep=waits.append)
    add(redis_client, "a")
    with caplog.at_level("INFO", logger="eva00.runtime.stage"):
        assert stage.step() == 1
    assert db.effects() == ["a"] and pending(redis_client) == {} and downstream(redis_client) == ["a"]
    assert len(waits) == 1
    assert "transaction conflict" in caplog.text and "unavailable" not in caplog.text


def _index_row_too_large(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
    # A payload too big for a btree entry: ProgramLimitExceeded, an OperationalError.
    conn.execute("INSERT INTO indexed_titles SELECT string_agg(md5(i::text), '')"
                 " FROM generate_series(1, 300) AS i")


def _statement_timeout(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
    conn.execute("SET LOCAL statement_timeout = '20ms'")
    conn.execute("SELECT pg_sleep(1)")  # QueryCanceled, an OperationalError


@pytest.mark.parametrize("hook", [_index_row_too_large, _statement_timeout],
                         ids=["index row too large", "statement timeout"])
def test_a_statement_postgresql_refuses_for_one_message_fails_that_message_not_the_stage(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db, hook: Hook) -> None:
    stage = make_stage(Recorder({"a": hook}))
    [entry_id, _b] = add(redis_client, "a", "b")
    assert stage.step() == 2  # no in-process "outage" retries: no_outage_expected would raise
    assert pending(redis_client) == {entry_id: 1}
    assert db.effects() == ["b"] and downstream(redis_client) == ["b"]


def test_higher_priority_streams_are_drained_before_the_last_one(
        make_stage: Callable[..., Stage], redis_client: redis.Redis) -> None:
    handler = Recorder()
    stage = make_stage(handler, inputs=[(PRIORITY, GROUP), (IN, GROUP)])
    add(redis_client, "scheduled-1", "scheduled-2")
    add(redis_client, "webhook", stream=PRIORITY)
    stage.step()
    assert handler.items() == ["webhook"]
    stage.step()
    assert handler.items() == ["webhook", "scheduled-1", "scheduled-2"]


# --- stopping ---

@pytest.fixture
def restore_signal_handlers() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_sigterm_mid_batch_finishes_the_batch_and_run_returns_0_with_nothing_pending(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db,
        restore_signal_handlers: None) -> None:
    def sigterm(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    handler = Recorder({"a": sigterm})
    stage = make_stage(handler)
    stage.install_signal_handlers()
    add(redis_client, "a", "b", "c")  # one batch
    assert stage.run() == 0
    assert stage.stopping
    assert handler.items() == ["a", "b", "c"]
    assert db.commits() == ["a", "b", "c"]
    assert pending(redis_client) == {}
    assert downstream(redis_client) == ["a", "b", "c"]


# --- Redis and PostgreSQL losing data or going away ---

def test_flushall_mid_run_the_stage_recreates_its_group_and_handles_new_entries(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    def flush(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
        redis_client.flushall()  # Redis loses everything while "b" is being handled

    stage = make_stage(Recorder({"b": flush}))
    add(redis_client, "a")
    assert stage.step() == 1
    redis_client.flushall()
    assert stage.step() == 0
    assert redis_client.xinfo_groups(IN)[0]["name"] == GROUP.encode()
    add(redis_client, "b")
    assert stage.step() == 1
    add(redis_client, "c")
    step_until(stage, lambda: db.effects() == ["a", "b", "c"])
    assert downstream(redis_client) == ["b", "c"]  # "a" went with the flush, after it was done
    assert pending(redis_client) == {}


def test_a_redis_restart_mid_run_is_waited_out_and_no_acknowledged_effect_is_lost(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db, stack: Stack) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the stage has waited at least once while Redis was down
            stack.redis_server.start()
        time.sleep(min(seconds, 0.05))

    handler = Recorder()
    stage = make_stage(handler, sleep=sleep)
    add(redis_client, "a", "b")
    assert stage.step() == 2
    stack.redis_server.stop()  # SIGTERM: Redis writes its AOF and exits
    try:
        assert stage.step() == 0
        assert len(waits) >= 2
    finally:
        if stack.redis_server.process is None or stack.redis_server.process.poll() is not None:
            stack.redis_server.start()
    add(redis_client, "c")
    step_until(stage, lambda: db.effects() == ["a", "b", "c"])
    assert handler.calls == [("a", 1), ("b", 1), ("c", 1)]  # nothing acknowledged came back
    assert downstream(redis_client) == ["a", "b", "c"]
    assert pending(redis_client) == {}


def test_a_postgresql_restart_mid_message_is_waited_out_and_the_message_is_handled_once(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db, stack: Stack) -> None:
    waits: list[float] = []

    def stop_postgres(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
        if delivery.times_delivered == 1 and not waits:
            # Every session ends (this one too, before its COMMIT), then the server stops.
            with psycopg.connect(stack.admin_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")
            stack.pg.stop()

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the stage has retried at least once while PostgreSQL was down
            stack.pg.start()
        time.sleep(min(seconds, 0.05))

    handler = Recorder({"a": stop_postgres})
    stage = make_stage(handler, sleep=sleep)
    add(redis_client, "a")
    try:
        assert stage.step() == 1
    finally:
        if stack.pg.process is None or stack.pg.process.poll() is not None:
            stack.pg.start()
    assert len(waits) >= 2
    assert handler.items() == ["a", "a"]  # the first attempt never committed
    assert db.effects() == ["a"] and db.commits() == ["a"]
    assert downstream(redis_client) == ["a"]
    assert pending(redis_client) == {}


# --- middleware ---

class Spy(Middleware):
    """Records each hook with what another session sees at that moment: the committed effects,
    the entries still pending, the downstream entries."""

    def __init__(self, db: Db, client: redis.Redis) -> None:
        self.db, self.redis = db, client
        self.events: list[tuple[Any, ...]] = []

    def _seen(self) -> tuple[list[str], int, list[str]]:
        return self.db.effects(), len(pending(self.redis)), downstream(self.redis)

    def before_handle(self, conn: psycopg.Connection[Any], message: Message,
                      delivery: Delivery) -> Sequence[Outgoing] | None:
        self.events.append(("before_handle", conn.info.transaction_status.name, *self._seen()))
        return None

    def before_record(self, conn: psycopg.Connection[Any], message: Message,
                      delivery: Delivery) -> Sequence[Outgoing] | None:
        self.events.append(("before_record", conn.info.transaction_status.name, *self._seen()))
        return None

    def after_handle(self, conn: psycopg.Connection[Any], message: Message, delivery: Delivery,
                     outgoing: Sequence[Outgoing]) -> None:
        # The handler's own writes are visible here, in its transaction, and nowhere else yet.
        mine = conn.execute("SELECT item_id FROM effects ORDER BY 1").fetchall()
        self.events.append(("after_handle", [r[0] for r in mine], len(outgoing), *self._seen()))

    def after_commit(self, message: Message, delivery: Delivery, outgoing: Sequence[Outgoing]) -> None:
        self.events.append(("after_commit", len(outgoing), *self._seen()))

    def after_dead_letter(self, message: Message | None, delivery: Delivery, error: str) -> None:
        self.events.append(("after_dead_letter", message, error, *self._seen()))


def test_each_middleware_hook_runs_at_its_point_of_the_message_s_way(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    spy = Spy(db, redis_client)
    stage = make_stage(Recorder(), middleware=[spy])
    add(redis_client, "a")
    assert stage.step() == 1
    assert spy.events == [
        ("before_handle", "INTRANS", [], 1, []),  # inside the transaction, before any effect
        ("after_handle", ["a"], 1, [], 1, []),  # the handler's write, not yet committed
        ("after_commit", 1, ["a"], 0, ["a"]),  # committed, acknowledged and forwarded
    ]


def test_after_commit_is_not_called_for_a_transaction_that_failed_to_commit_nor_for_a_skip(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    def violate_at_commit(conn: psycopg.Connection[Any], delivery: Delivery) -> None:
        conn.execute("INSERT INTO checked_at_commit VALUES ('x'), ('x')")  # deferred: COMMIT fails

    spy = Spy(db, redis_client)
    stage = make_stage(Recorder({"a": violate_at_commit, "b": raising(Skip("nothing to do"))}),
                       middleware=[spy])
    add(redis_client, "a", "b")
    assert stage.step() == 2
    assert [event[0] for event in spy.events] == ["before_handle", "after_handle", "before_handle"]
    assert db.effects() == [] and len(pending(redis_client)) == 1, "a stays pending, b is acknowledged"


def test_after_dead_letter_gets_the_message_and_its_error_once_it_is_dead_lettered(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    spy = Spy(db, redis_client)
    stage = make_stage(Recorder({"a": raising(Poison("cannot be understood"))}), middleware=[spy])
    add(redis_client, "a")
    redis_client.xadd(IN, {b"t": b"test.stage.nonsense", b"v": b"1", b"d": b"{}"})
    assert stage.step() == 2
    dead = [event for event in spy.events if event[0] == "after_dead_letter"]
    assert [(message, error) for _hook, message, error, *_seen in dead] == [
        (Item("a"), "poison: cannot be understood"),
        (None, "poison: unknown message type 'test.stage.nonsense'")], "undecodable: no message"
    assert [pending_count for *_first, pending_count, _out in dead] == [1, 0], (
        "each is acknowledged before its hook runs")
    assert len(db.dead_letters()) == 2 and pending(redis_client) == {}


class Answering(Middleware):
    """Finishes every message itself, as the full-sync ledger does for a job already settled."""

    def before_handle(self, conn: psycopg.Connection[Any], message: Message,
                      delivery: Delivery) -> Sequence[Outgoing] | None:
        assert isinstance(message, Item)
        conn.execute("INSERT INTO commits VALUES (%s, %s, 0)", (message.item_id, delivery.entry_id))
        return [(OUT, Item(f"{message.item_id}-from-middleware"))]


def test_a_before_handle_that_answers_replaces_the_handler_and_its_writes_commit(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    handler = Recorder()
    spy = Spy(db, redis_client)
    stage = make_stage(handler, middleware=[Answering(), spy])
    add(redis_client, "a")
    assert stage.step() == 1
    assert handler.items() == [] and db.commits() == ["a"]
    assert downstream(redis_client) == ["a-from-middleware"] and pending(redis_client) == {}
    assert [event[0] for event in spy.events] == ["after_commit"], (
        "later before_handle and every after_handle are skipped")


class Broken(Middleware):
    def after_commit(self, message: Message, delivery: Delivery, outgoing: Sequence[Outgoing]) -> None:
        raise redis.ConnectionError("gone after the ack")


def test_a_failing_after_commit_hook_is_logged_and_the_message_stays_handled(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db) -> None:
    stage = make_stage(Recorder(), middleware=[Broken()])
    add(redis_client, "a", "b")
    assert stage.step() == 2
    assert db.effects() == ["a", "b"] and downstream(redis_client) == ["a", "b"]
    assert pending(redis_client) == {} and stage.stats.handled == 2 and stage.stats.failed == 0


# --- a handler that fetches, then records ---

class Fetching:
    """A FetchThenRecord handler: ``fetch`` notes how many pooled connections are checked out
    while it "waits on the network" and what a read transaction allows; ``record`` writes the
    effect."""

    accepts: tuple[type[Message], ...] = (Item,)

    def __init__(self, pool: ConnectionPool, spy: Spy) -> None:
        self.pool, self.spy = pool, spy
        self.recorded: list[str] = []

    def fetch(self, message: Message, delivery: Delivery, reads: Any) -> str:
        assert isinstance(message, Item)
        stats = self.pool.get_stats()
        with reads() as conn:
            seen = conn.execute("SELECT count(*) FROM effects").fetchone()[0]
            try:
                conn.execute("INSERT INTO effects VALUES ('written while fetching')")
                refused = ""
            except psycopg.Error as exc:
                refused = type(exc).__name__
        self.spy.events.append(("fetch", stats["pool_size"] - stats["pool_available"], seen, refused))
        return f"{message.item_id}-fetched"

    def record(self, conn: psycopg.Connection[Any], message: Message, delivery: Delivery,
               fetched: str) -> Sequence[Outgoing]:
        self.recorded.append(fetched)
        conn.execute("INSERT INTO effects (item_id) VALUES (%s) ON CONFLICT DO NOTHING", (fetched,))
        return [(OUT, Item(fetched))]


def test_a_fetch_then_record_handler_fetches_with_no_connection_held_and_records_in_one_transaction(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db, pool: ConnectionPool) -> None:
    spy = Spy(db, redis_client)
    stage = make_stage(Fetching(pool, spy), middleware=[spy])
    add(redis_client, "a")
    assert stage.step() == 1
    assert spy.events == [
        ("before_handle", "INTRANS", [], 1, []),  # its own short transaction, before the fetch
        ("fetch", 0, 0, "ReadOnlySqlTransaction"),  # nothing checked out; reads may not write
        ("before_record", "INTRANS", [], 1, []),  # the record's transaction, before its writes
        ("after_handle", ["a-fetched"], 1, [], 1, []),
        ("after_commit", 1, ["a-fetched"], 0, ["a-fetched"]),
    ]


class AnsweringBeforeRecord(Middleware):
    """Finds the message recorded by a peer while this one fetched, as the full-sync ledger does."""

    def before_record(self, conn: psycopg.Connection[Any], message: Message,
                      delivery: Delivery) -> Sequence[Outgoing] | None:
        assert isinstance(message, Item)
        return [(OUT, Item(f"{message.item_id}-recorded-by-a-peer"))]


def test_a_before_record_that_answers_drops_what_was_fetched(
        make_stage: Callable[..., Stage], redis_client: redis.Redis, db: Db, pool: ConnectionPool) -> None:
    spy = Spy(db, redis_client)
    handler = Fetching(pool, spy)
    stage = make_stage(handler, middleware=[AnsweringBeforeRecord(), spy])
    add(redis_client, "a")
    assert stage.step() == 1
    assert handler.recorded == [] and db.effects() == []
    assert downstream(redis_client) == ["a-recorded-by-a-peer"] and pending(redis_client) == {}
    assert [event[0] for event in spy.events] == ["before_handle", "fetch", "after_commit"]
