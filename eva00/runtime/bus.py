"""The Redis Streams seam: groups, publishing, reading (own pending first), reclaiming, forwarding,
trimming. It is the one module that adds entries to a stream (XADD), so how a message becomes a
stream entry is decided here alone.

Delivery guarantee: at least once. An entry stays in its group's pending list until the stage has
committed its effect to PostgreSQL; then one MULTI adds the downstream entries and acknowledges
it, so downstream entries exist if and only if the upstream one is acknowledged. Redis may lose
everything; a missing stream or group is recreated (reading from the start) and the next poll
heals what was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline
from redis.commands.core import Script

from eva00 import keys
from eva00.messages import Fields, Message

log = logging.getLogger(__name__)

Outgoing = tuple[str, Message]


@dataclass(frozen=True)
class Delivery:
    stream: str
    group: str
    entry_id: str
    fields: Fields
    times_delivered: int


def _entry_order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _lossy_text(value: bytes | str) -> str:
    """For copying a field name of any entry, even one that is not UTF-8 (a poison message)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _is_nogroup(exc: redis.ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


def _add(target: redis.Redis | Pipeline, stream: str, message: Message) -> Any:
    """The one XADD of a message: its fields as they are, no MAXLEN (stages trim what they read)."""
    return target.xadd(stream, message.to_fields())  # type: ignore[arg-type]


# Add the entry and remember its id under KEYS[1] for ARGV[1] seconds, unless KEYS[1] exists: one
# script, so two callers racing on the same key never both add. ARGV[2..] are the entry's fields.
_PUBLISH_UNLESS_KEY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local entry = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[1], entry, 'EX', ARGV[1])
return entry
"""


class Bus:
    """One consumer's view of the streams. Not thread-safe: one Bus per loop."""

    def __init__(self, client: redis.Redis, consumer: str, *, maxlen: int = 100_000) -> None:
        self.redis = client
        self.consumer = consumer
        self.maxlen = maxlen
        # Streams whose own pending entries (from before a restart) are drained.
        self._own_pending_done: set[tuple[str, str]] = set()
        # While draining: the last own pending id handed out, so each is re-read once.
        self._own_pending_after: dict[tuple[str, str], str] = {}
        self._publish_unless_key: Script | None = None  # registered on first use

    # --- groups ---

    def ensure_group(self, stream: str, group: str) -> None:
        """Create the group (and stream) if missing, reading from the start so nothing is skipped."""
        try:
            self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # --- publishing: a new entry that answers no delivery (a scheduler, a CLI, a reconciler) ---

    def publish(self, stream: str, message: Message) -> str:
        """Add one entry; returns its id."""
        return _text(_add(self.redis, stream, message))

    def publish_many(self, outgoing: Iterable[Outgoing]) -> list[str]:
        """Add entries in one round trip, not atomically: each stands alone, so a failure part
        way leaves the ones before it (callers re-enqueue what a stream does not hold)."""
        pipe = self.redis.pipeline(transaction=False)
        for stream, message in outgoing:
            _add(pipe, stream, message)
        return [_text(entry_id) for entry_id in pipe.execute()]

    def publish_unless_key(self, stream: str, message: Message, *, key: str, ttl_s: int) -> str | None:
        """Add the entry and set ``key`` to its id for ``ttl_s``, atomically, unless ``key`` exists
        (a debounce: an entry that covers this one is already queued); None when it existed."""
        if self._publish_unless_key is None:
            self._publish_unless_key = self.redis.register_script(_PUBLISH_UNLESS_KEY)
        args: list[Any] = [str(ttl_s)]
        for name, value in message.to_fields().items():
            args += [name, value]
        entry = self._publish_unless_key(keys=[key, stream], args=args)
        return None if entry is None else _text(entry)

    # --- reading ---

    def read(self, stream: str, group: str, *, count: int, block_ms: int | None) -> list[Delivery]:
        """This consumer's own pending entries first (left by a crash), each once; then new ones."""
        key = (stream, group)
        try:
            if key not in self._own_pending_done:
                # Each own pending entry once, in id order. One that fails again stays pending
                # and comes back through reclaim() after claim_idle_ms like any other failure;
                # re-reading from "0" would redeliver it at once and burn its max_deliveries.
                own = self._read(stream, group, self._own_pending_after.get(key, "0"), count, None)
                if own:
                    self._own_pending_after[key] = own[-1][0]
                    return self._with_counts(stream, group, own)
                self._own_pending_done.add(key)
                self._own_pending_after.pop(key, None)
            fresh = self._read(stream, group, ">", count, block_ms)
            return [Delivery(stream, group, entry_id, fields, 1) for entry_id, fields in fresh]
        except redis.ResponseError as exc:
            if not _is_nogroup(exc):
                raise
            log.warning("group %s on %s is gone (Redis lost its data?); recreating", group, stream)
            self.ensure_group(stream, group)
            self._reread_own_pending(key)
            return []

    def _reread_own_pending(self, key: tuple[str, str]) -> None:
        self._own_pending_done.discard(key)
        self._own_pending_after.pop(key, None)

    def _read(self, stream: str, group: str, start: str, count: int,
              block_ms: int | None) -> list[tuple[str, Fields]]:
        answer: Any = self.redis.xreadgroup(group, self.consumer, {stream: start}, count=count,
                                            block=block_ms)
        entries: list[tuple[str, Fields]] = []
        for _name, items in answer or []:
            for entry_id, fields in items:
                # A pending entry whose data was trimmed or deleted comes back with no fields.
                entries.append((_text(entry_id), fields or {}))
        return entries

    def touch(self, stream: str, group: str, entry_ids: Sequence[str], *, min_idle_ms: int) -> int:
        """Reset the idle time of those of our own pending entries that have been idle at least
        ``min_idle_ms``, so peers do not reclaim entries we are still working on. An entry a peer
        took over since (it is no longer ours, or was claimed a moment ago) is left alone."""
        if not entry_ids:
            return 0
        wanted = set(entry_ids)
        pending: Any = self.redis.xpending_range(
            stream, group, min=min(entry_ids, key=_entry_order), max=max(entry_ids, key=_entry_order),
            count=len(entry_ids) + 100, consumername=self.consumer)
        ours: list[Any] = [_text(item["message_id"]) for item in pending
                           if _text(item["message_id"]) in wanted]
        if not ours:
            return 0
        touched: Any = self.redis.xclaim(stream, group, self.consumer, min_idle_ms, ours, justid=True)
        return len(touched or [])

    def reclaim(self, stream: str, group: str, *, min_idle_ms: int, count: int) -> list[Delivery]:
        """Take over entries idle longer than min_idle_ms (a dead peer's, or our own retries)."""
        try:
            answer: Any = self.redis.xautoclaim(stream, group, self.consumer, min_idle_ms,
                                           start_id="0-0", count=count)
        except redis.ResponseError as exc:
            if not _is_nogroup(exc):
                raise
            self.ensure_group(stream, group)
            return []
        claimed = [(_text(entry_id), fields or {}) for entry_id, fields in answer[1] if entry_id]
        if len(claimed) < len(answer[1]):
            # Redis 6.2 claims an entry whose data was deleted (XDEL, MAXLEN) but answers nil
            # without its id, so it would sit in our pending list forever (and stop trim()).
            # Re-reading our own pending list returns it with its id and no fields: it is then
            # dead-lettered as poison and acknowledged. (Redis 7 drops such entries itself.)
            log.warning("%s/%s: reclaimed entries whose data was deleted", stream, group)
            self._reread_own_pending((stream, group))
        return self._with_counts(stream, group, claimed)

    def _with_counts(self, stream: str, group: str,
                     entries: Sequence[tuple[str, Fields]]) -> list[Delivery]:
        if not entries:
            return []
        # One exact lookup per entry: a range from the first to the last id could hold more of
        # this consumer's other pending entries than any COUNT, and a count that silently fell
        # back to 1 would let a failing message escape max_deliveries.
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, _fields in entries:
            pipe.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
        counts = {}
        for answer in pipe.execute():
            for item in answer:
                counts[_text(item["message_id"])] = int(item["times_delivered"])
        return [Delivery(stream, group, entry_id, fields, counts.get(entry_id, 1))
                for entry_id, fields in entries]

    # --- finishing ---

    def forward(self, delivery: Delivery | None, outgoing: Iterable[Outgoing]) -> None:
        """XADD every downstream entry and XACK the upstream one, atomically."""
        pipe = self.redis.pipeline(transaction=True)
        for stream, item in outgoing:
            _add(pipe, stream, item)
        if delivery is not None:
            pipe.xack(delivery.stream, delivery.group, delivery.entry_id)
        pipe.execute()

    def dead_letter(self, delivery: Delivery, error: str) -> None:
        fields = {**{_lossy_text(k): v for k, v in delivery.fields.items()},
                  "dl_stream": delivery.stream, "dl_group": delivery.group,
                  "dl_id": delivery.entry_id, "dl_error": error[:2000],
                  "dl_deliveries": str(delivery.times_delivered)}
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(keys.STREAM_DEAD_LETTERS, fields, maxlen=self.maxlen,  # type: ignore[arg-type]
                  approximate=True)
        pipe.xack(delivery.stream, delivery.group, delivery.entry_id)
        pipe.execute()

    # --- inspection and housekeeping ---

    def pending_count(self, stream: str, group: str) -> int:
        try:
            return int(self.redis.xpending(stream, group)["pending"])
        except redis.ResponseError as exc:
            if _is_nogroup(exc):
                return 0
            raise


def safe_trim_id(client: redis.Redis, stream: str) -> str | None:
    """The oldest entry id some group still needs (pending or unread); None if nothing is safe.

    Trimming below this id never drops an entry a group has not acknowledged, which MAXLEN alone
    would do to a slow consumer's backlog.
    """
    try:
        groups: Any = client.xinfo_groups(stream)
    except redis.ResponseError:
        return None
    if not groups:
        return None
    floor: tuple[int, int] | None = None
    for group in groups:
        name = _text(group["name"])
        pending: Any = client.xpending(stream, name)
        if int(pending["pending"]) > 0:
            needed = _parse_id(_text(pending["min"]))
        else:
            ms, seq = _parse_id(_text(group["last-delivered-id"]))
            needed = (ms, seq + 1)
        floor = needed if floor is None else min(floor, needed)
    assert floor is not None
    return f"{floor[0]}-{floor[1]}"


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def owed_entries(client: redis.Redis, stream: str, group: str) -> list[Any]:
    """The fields of every entry the group still owes: pending (delivered, not acknowledged) and
    not yet delivered. Pending is read before and after the undelivered part, so an entry moving
    from one to the other while we read is seen at least once."""
    entries = _pending_entries(client, stream, group) + _undelivered_entries(client, stream, group)
    return entries + _pending_entries(client, stream, group)


def _pending_entries(client: redis.Redis, stream: str, group: str) -> list[Any]:
    try:
        pending: Any = client.xpending_range(stream, group, min="-", max="+", count=100_000)
    except redis.ResponseError:
        return []  # no stream or no group: nothing pending
    entries: list[Any] = []
    for item in pending:
        entry_id = item["message_id"]
        entries += [fields for _id, fields in client.xrange(stream, entry_id, entry_id) or []]
    return entries


def _undelivered_entries(client: redis.Redis, stream: str, group: str) -> list[Any]:
    try:
        groups: Any = client.xinfo_groups(stream)
    except redis.ResponseError:
        return []
    last = next((g["last-delivered-id"] for g in groups if _text(g["name"]) == group), None)
    start = "-" if last is None else "(" + _text(last)
    return [fields for _id, fields in client.xrange(stream, start, "+") or []]


def cap_unconsumed(client: redis.Redis, stream: str, maxlen: int) -> int:
    """An outbound stream nobody has subscribed to yet (no group: the ingest feed before its
    downstream reader exists) keeps only its newest ~maxlen entries; once a group exists, only
    what it acknowledged is ever dropped (trim). Returns how many entries were removed."""
    try:
        if client.xinfo_groups(stream):
            return trim(client, stream, keep_at_least=min(maxlen, 1000))
    except redis.ResponseError:
        return 0  # no such stream
    return int(client.xtrim(stream, maxlen=maxlen, approximate=True))


def trim(client: redis.Redis, stream: str, keep_at_least: int) -> int:
    """Drop acknowledged entries below the safe id, keeping at least ``keep_at_least`` recent ones
    for inspection. Returns how many entries were removed."""
    floor = safe_trim_id(client, stream)
    if floor is None:
        return 0
    length = int(client.xlen(stream))
    if length <= keep_at_least:
        return 0
    # Never cut into the newest keep_at_least entries either. (COUNT 0 would mean "all".)
    recent: Any = client.xrevrange(stream, count=keep_at_least) if keep_at_least > 0 else []
    if recent:
        oldest_recent = _parse_id(_text(recent[-1][0]))
        floor_id = min(_parse_id(floor), oldest_recent)
        floor = f"{floor_id[0]}-{floor_id[1]}"
    return int(client.execute_command("XTRIM", stream, "MINID", floor))
