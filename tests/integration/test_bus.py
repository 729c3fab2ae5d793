"""The stream bus against a real Redis: own pending entries first after a restart, a dead peer's
entries reclaimed with their true delivery counts, forward and dead_letter acknowledge together
with what they add, a lost group is recreated, and trimming never drops an unacknowledged entry."""

from __future__ import annotations

import dataclasses
import time

import pytest
import redis

from eva00 import keys
from eva00.messages import Message, decode, message
from eva00.runtime.bus import Bus, Delivery, safe_trim_id, trim

IN, OUT, GROUP = "test:bus:in", "test:bus:out", "workers"


@message("test.bus.item")
@dataclasses.dataclass(frozen=True)
class Item(Message):
    n: int


@pytest.fixture
def bus(redis_client: redis.Redis) -> Bus:
    bus = Bus(redis_client, "worker-1")
    bus.ensure_group(IN, GROUP)
    return bus


def _add(client: redis.Redis, *numbers: int, stream: str = IN) -> list[str]:
    return [client.xadd(stream, Item(n).to_fields()).decode() for n in numbers]


def _ids(deliveries: list[Delivery]) -> list[str]:
    return [d.entry_id for d in deliveries]


def _pending_of(client: redis.Redis, consumer: str, stream: str = IN) -> list[str]:
    answer = client.xpending_range(stream, GROUP, "-", "+", 1000, consumername=consumer)
    return [item["message_id"].decode() for item in answer]


def _counts(client: redis.Redis, stream: str = IN) -> dict[str, int]:
    answer = client.xpending_range(stream, GROUP, "-", "+", 1000)
    return {item["message_id"].decode(): int(item["times_delivered"]) for item in answer}


def _wait_idle(ms: int) -> None:
    time.sleep(ms / 1000 + 0.03)


def test_a_group_created_after_entries_were_added_reads_them_from_the_start(
        redis_client: redis.Redis) -> None:
    ids = _add(redis_client, 1, 2)
    bus = Bus(redis_client, "late")
    bus.ensure_group(IN, GROUP)
    bus.ensure_group(IN, GROUP)  # idempotent
    got = bus.read(IN, GROUP, count=10, block_ms=None)
    assert _ids(got) == ids
    assert [decode(d.fields) for d in got] == [Item(1), Item(2)]
    assert {d.times_delivered for d in got} == {1}


def test_a_restarted_consumer_rereads_its_own_pending_entries_before_new_ones(
        bus: Bus, redis_client: redis.Redis) -> None:
    first = _add(redis_client, 1, 2)
    assert _ids(bus.read(IN, GROUP, count=10, block_ms=None)) == first  # then "crashes"
    later = _add(redis_client, 3)

    restarted = Bus(redis_client, "worker-1")
    own = restarted.read(IN, GROUP, count=10, block_ms=None)
    assert _ids(own) == first
    assert [d.times_delivered for d in own] == [2, 2]
    restarted.forward(own[0], [])
    restarted.forward(own[1], [])
    fresh = restarted.read(IN, GROUP, count=10, block_ms=None)  # own list empty: new entries
    assert _ids(fresh) == later and fresh[0].times_delivered == 1


def test_own_pending_entries_are_each_reread_once_in_batches_then_new_ones_follow(
        bus: Bus, redis_client: redis.Redis) -> None:
    ids = _add(redis_client, 1, 2, 3)
    bus.read(IN, GROUP, count=10, block_ms=None)  # and then it crashed
    later = _add(redis_client, 4)
    restarted = Bus(redis_client, "worker-1")
    # Nothing is acknowledged (they failed again): they are left for reclaim(), not re-read now.
    assert _ids(restarted.read(IN, GROUP, count=2, block_ms=None)) == ids[:2]
    assert _ids(restarted.read(IN, GROUP, count=2, block_ms=None)) == ids[2:]
    assert _ids(restarted.read(IN, GROUP, count=2, block_ms=None)) == later
    assert _counts(redis_client) == {ids[0]: 2, ids[1]: 2, ids[2]: 2, later[0]: 1}


def test_a_dead_peers_entries_are_reclaimed_only_once_idle_for_min_idle_ms(
        bus: Bus, redis_client: redis.Redis) -> None:
    peer = Bus(redis_client, "peer-dead")
    ids = _add(redis_client, 1, 2)
    peer.read(IN, GROUP, count=10, block_ms=None)  # and then it dies

    assert bus.reclaim(IN, GROUP, min_idle_ms=300, count=10) == []
    _wait_idle(300)
    claimed = bus.reclaim(IN, GROUP, min_idle_ms=300, count=10)
    assert _ids(claimed) == ids
    assert [d.times_delivered for d in claimed] == [2, 2]
    assert [decode(d.fields) for d in claimed] == [Item(1), Item(2)]
    assert _pending_of(redis_client, "worker-1") == ids
    assert _pending_of(redis_client, "peer-dead") == []


def test_reclaimed_entries_carry_their_true_delivery_counts_among_many_other_pending_entries(
        bus: Bus, redis_client: redis.Redis) -> None:
    peer = Bus(redis_client, "peer-dead")
    first = _add(redis_client, 0)
    peer.read(IN, GROUP, count=1, block_ms=None)
    for _ in range(2):
        redis_client.xreadgroup(GROUP, "peer-dead", {IN: "0"})
    _add(redis_client, *range(1, 61))
    bus.read(IN, GROUP, count=100, block_ms=None)  # 60 entries of our own, in flight
    last = _add(redis_client, 61)
    peer.read(IN, GROUP, count=1, block_ms=None)
    for _ in range(5):  # the peer crash-looped on its last entry
        redis_client.xreadgroup(GROUP, "peer-dead", {IN: "0"})
    _wait_idle(100)
    redis_client.xreadgroup(GROUP, "worker-1", {IN: "0"}, count=100)  # ours are not idle

    claimed = bus.reclaim(IN, GROUP, min_idle_ms=100, count=10)
    assert _ids(claimed) == first + last
    assert [d.times_delivered for d in claimed] == [
        _counts(redis_client)[first[0]], _counts(redis_client)[last[0]]] == [9, 7]


def test_forward_adds_the_downstream_entries_and_acknowledges_the_upstream_one(
        bus: Bus, redis_client: redis.Redis) -> None:
    _add(redis_client, 1)
    [delivery] = bus.read(IN, GROUP, count=10, block_ms=None)
    assert bus.pending_count(IN, GROUP) == 1
    bus.forward(delivery, [(OUT, Item(10)), (OUT, Item(11)), (keys.STREAM_INGEST, Item(12))])
    assert bus.pending_count(IN, GROUP) == 0
    assert [decode(f) for _id, f in redis_client.xrange(OUT)] == [Item(10), Item(11)]
    assert [decode(f) for _id, f in redis_client.xrange(keys.STREAM_INGEST)] == [Item(12)]


def test_forward_runs_as_one_multi_transaction(bus: Bus, redis_client: redis.Redis) -> None:
    _add(redis_client, 1)
    [delivery] = bus.read(IN, GROUP, count=10, block_ms=None)
    seen: list[list[str]] = []
    real_pipeline = redis_client.pipeline

    def recording_pipeline(transaction: bool = True, shard_hint: str | None = None) -> redis.client.Pipeline:
        pipe = real_pipeline(transaction=transaction, shard_hint=shard_hint)
        real_execute = pipe.execute

        def execute(raise_on_error: bool = True) -> list[object]:
            seen.append([str(args[0]) for args, _options in pipe.command_stack])
            assert pipe.transaction
            return real_execute(raise_on_error)

        pipe.execute = execute
        return pipe

    redis_client.pipeline = recording_pipeline
    bus.forward(delivery, [(OUT, Item(2))])
    assert seen == [["XADD", "XACK"]]


def test_dead_letter_copies_the_entry_with_its_origin_and_error_and_acknowledges_it(
        bus: Bus, redis_client: redis.Redis) -> None:
    [entry_id] = _add(redis_client, 5)
    [delivery] = bus.read(IN, GROUP, count=10, block_ms=None)
    bus.dead_letter(delivery, "boom " * 1000)
    assert bus.pending_count(IN, GROUP) == 0
    [(_id, fields)] = redis_client.xrange(keys.STREAM_DEAD_LETTERS)
    assert decode(fields) == Item(5)
    assert fields[b"dl_stream"] == IN.encode() and fields[b"dl_group"] == GROUP.encode()
    assert fields[b"dl_id"] == entry_id.encode() and fields[b"dl_deliveries"] == b"1"
    assert fields[b"dl_error"].startswith(b"boom") and len(fields[b"dl_error"]) == 2000


def test_read_and_reclaim_recreate_a_group_that_redis_lost(bus: Bus, redis_client: redis.Redis) -> None:
    _add(redis_client, 1)
    bus.read(IN, GROUP, count=10, block_ms=None)
    redis_client.flushall()
    assert bus.reclaim(IN, GROUP, min_idle_ms=0, count=10) == []
    assert redis_client.xinfo_groups(IN)[0]["name"] == GROUP.encode()
    redis_client.flushall()
    assert bus.read(IN, GROUP, count=10, block_ms=100) == []
    assert redis_client.xinfo_groups(IN)[0]["name"] == GROUP.encode()
    ids = _add(redis_client, 2)
    assert _ids(bus.read(IN, GROUP, count=10, block_ms=None)) == ids
    assert bus.pending_count("test:bus:nothing", GROUP) == 0


def test_a_reclaimed_entry_whose_data_was_deleted_is_handed_back_and_can_be_acknowledged(
        bus: Bus, redis_client: redis.Redis) -> None:
    assert bus.read(IN, GROUP, count=10, block_ms=None) == []  # a running consumer
    peer = Bus(redis_client, "peer-dead")
    [gone, kept] = _add(redis_client, 1, 2)
    peer.read(IN, GROUP, count=10, block_ms=None)
    redis_client.xdel(IN, gone)  # e.g. an operator's XDEL, or MAXLEN
    _wait_idle(50)

    claimed = bus.reclaim(IN, GROUP, min_idle_ms=50, count=10)
    assert kept in _ids(claimed)
    handed_back = claimed + bus.read(IN, GROUP, count=10, block_ms=None)
    [empty] = [d for d in handed_back if d.entry_id == gone]
    assert empty.fields == {}
    for delivery in handed_back:
        bus.dead_letter(delivery, "no data")
    assert bus.pending_count(IN, GROUP) == 0


def _acknowledge(client: redis.Redis, group: str, consumer: str, count: int) -> list[str]:
    answer = client.xreadgroup(group, consumer, {IN: ">"}, count=count)
    ids = [entry_id.decode() for entry_id, _fields in answer[0][1]] if answer else []
    return ids


def test_trim_never_drops_an_entry_a_slow_group_has_not_acknowledged(redis_client: redis.Redis) -> None:
    ids = _add(redis_client, *range(10))
    for group in ("fast", "slow"):
        redis_client.xgroup_create(IN, group, id="0")
    redis_client.xack(IN, "fast", *_acknowledge(redis_client, "fast", "f", 10))
    slow_read = _acknowledge(redis_client, "slow", "s", 4)  # reads 4, acknowledges 2 of them
    redis_client.xack(IN, "slow", slow_read[0], slow_read[2])

    assert safe_trim_id(redis_client, IN) == ids[1]
    assert trim(redis_client, IN, keep_at_least=0) == 1
    assert [i.decode() for i, _f in redis_client.xrange(IN)] == ids[1:]

    redis_client.xack(IN, "slow", slow_read[1], slow_read[3])  # pending gone; 6 never read
    assert trim(redis_client, IN, keep_at_least=0) == 3
    assert [i.decode() for i, _f in redis_client.xrange(IN)] == ids[4:]

    redis_client.xack(IN, "slow", *_acknowledge(redis_client, "slow", "s", 10))
    assert trim(redis_client, IN, keep_at_least=0) == 6
    assert redis_client.xlen(IN) == 0


def test_trim_keeps_the_newest_entries_it_was_asked_to_keep(redis_client: redis.Redis) -> None:
    ids = _add(redis_client, *range(10))
    redis_client.xgroup_create(IN, GROUP, id="0")
    redis_client.xack(IN, GROUP, *_acknowledge(redis_client, GROUP, "c", 10))
    assert trim(redis_client, IN, keep_at_least=10) == 0
    assert trim(redis_client, IN, keep_at_least=3) == 7
    assert [i.decode() for i, _f in redis_client.xrange(IN)] == ids[7:]


def test_a_stream_without_a_group_or_without_a_key_is_never_trimmed(redis_client: redis.Redis) -> None:
    _add(redis_client, 1, 2, 3)
    assert safe_trim_id(redis_client, IN) is None
    assert trim(redis_client, IN, keep_at_least=0) == 0
    assert redis_client.xlen(IN) == 3
    assert trim(redis_client, "test:bus:absent", keep_at_least=0) == 0


def test_an_outbound_feed_nobody_reads_yet_is_capped_and_once_read_loses_only_acknowledged_entries(
        redis_client: redis.Redis) -> None:
    from eva00.runtime.bus import cap_unconsumed

    ids = _add(redis_client, *range(300))
    assert cap_unconsumed(redis_client, IN, maxlen=100) > 0
    assert 100 <= redis_client.xlen(IN) < 300, "approximate: whole macro nodes go"
    assert cap_unconsumed(redis_client, "test:bus:absent", maxlen=100) == 0

    redis_client.delete(IN)
    ids = _add(redis_client, *range(300))
    redis_client.xgroup_create(IN, GROUP, id="0")
    read = _acknowledge(redis_client, GROUP, "reader", 50)
    redis_client.xack(IN, GROUP, *read)
    cap_unconsumed(redis_client, IN, maxlen=10)
    assert [i.decode() for i, _f in redis_client.xrange(IN)] == ids[50:], "unread entries are kept"


def _items(client: redis.Redis, stream: str) -> list[Message]:
    return [decode(fields) for _id, fields in client.xrange(stream)]  # type: ignore[union-attr]


def test_publish_adds_one_entry_and_returns_its_id(bus: Bus, redis_client: redis.Redis) -> None:
    entry_id = bus.publish(OUT, Item(7))
    assert [e[0].decode() for e in redis_client.xrange(OUT)] == [entry_id]  # type: ignore[union-attr]
    assert _items(redis_client, OUT) == [Item(7)]


def test_publish_many_adds_every_entry_to_its_own_stream_in_order(
        bus: Bus, redis_client: redis.Redis) -> None:
    ids = bus.publish_many([(OUT, Item(1)), (IN, Item(2)), (OUT, Item(3))])
    assert len(ids) == 3
    assert _items(redis_client, OUT) == [Item(1), Item(3)] and _items(redis_client, IN) == [Item(2)]


def test_publish_unless_key_adds_once_and_keeps_the_entry_id_under_the_key_for_its_ttl(
        bus: Bus, redis_client: redis.Redis) -> None:
    first = bus.publish_unless_key(OUT, Item(1), key="test:bus:debounce", ttl_s=60)
    assert first is not None and redis_client.get("test:bus:debounce") == first.encode()
    assert 0 < redis_client.ttl("test:bus:debounce") <= 60  # type: ignore[operator]
    assert bus.publish_unless_key(OUT, Item(2), key="test:bus:debounce", ttl_s=60) is None
    assert _items(redis_client, OUT) == [Item(1)]
