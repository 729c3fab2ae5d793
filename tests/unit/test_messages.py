"""Messages on the wire: every message round-trips through its stream fields, and anything a
reader cannot understand (unknown type, other version, broken body, unknown fields) is Poison."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from eva00.errors import Poison
from eva00.messages import (
    BudgetClass,
    FileJob,
    IngestEvent,
    Message,
    PageMessage,
    PollJob,
    PollMode,
    decode,
    message,
)


@message("test.unit.sample", version=2)
@dataclasses.dataclass(frozen=True)
class Sample(Message):
    name: str
    count: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)
    parent: int | None = None


PIPELINE_MESSAGES: list[Message] = [
    PollJob(kind="rfis", project_id=7, mode=PollMode.INCREMENTAL, budget=BudgetClass.SCHEDULED,
            reason="interval", requested_at=1.5, poll_id="p1", page=2,
            window_from="2026-11-01T09:00:00Z", window_to="2026-11-01T10:00:00Z",
            expected_total=120, items_seen=100, parent_id=None, rerun=1, run_id="r1"),
    PollJob(kind="projects", project_id=None, mode=PollMode.FULL, budget=BudgetClass.ON_DEMAND),
    PageMessage(poll_id="p1", kind="rfis", project_id=7, mode=PollMode.RECONCILE, page=3,
                fetched_at="2026-11-01T10:00:00Z", items=[{"id": 1, "subject": "Beam ü", "n": None}],
                ids=[1, 2], deleted_ids=[3], missing_ids=[4], is_last=True, pages_total=3,
                complete=True, window_to="2026-11-01T09:59:55Z", run_id="r1"),
    FileJob(kind="drawings", procore_id=9, project_id=7, url_field="pdf_url",
            url="https://storage.example/a?sig=x", procore_file_id="f", expected_size_bytes=1 << 40,
            priority=3),
    IngestEvent(what="file", kind="photos", procore_id=5, project_id=None, sha256="ab" * 32),
    Sample(name="x", count=3, tags=["a", "b"], parent=None),
]


def _as_redis_returns(fields: dict[str, bytes]) -> dict[bytes, bytes]:
    return {key.encode(): value for key, value in fields.items()}


@pytest.mark.parametrize("msg", PIPELINE_MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_its_stream_fields(msg: Message) -> None:
    fields = msg.to_fields()
    assert set(fields) == {"t", "v", "d"}
    assert fields["t"] == msg.TYPE.encode() and fields["v"] == str(msg.VERSION).encode()
    assert decode(_as_redis_returns(fields)) == msg  # as Redis hands them back: bytes keys
    assert decode(fields) == msg  # and as written: str keys


def test_a_message_carries_its_registered_type_and_version() -> None:
    assert (Sample.TYPE, Sample.VERSION) == ("test.unit.sample", 2)
    assert (PollJob.TYPE, PageMessage.TYPE, FileJob.TYPE, IngestEvent.TYPE) == (
        "poll", "page", "file", "ingest")


def _fields(t: bytes = b"test.unit.sample", v: bytes = b"2",
            d: bytes = b'{"name": "x"}') -> dict[bytes, bytes]:
    return {b"t": t, b"v": v, b"d": d}


POISON = {
    "unknown type": _fields(t=b"no-such-type"),
    "older version": _fields(v=b"1"),
    "newer version": _fields(v=b"3"),
    "version not a number": _fields(v=b"two"),
    "body not JSON": _fields(d=b"{name: x"),
    "body a JSON list": _fields(d=b'["x"]'),
    "body a JSON string": _fields(d=b'"x"'),
    "unknown field": _fields(d=b'{"name": "x", "colour": "red"}'),
    "missing required field": _fields(d=b'{"count": 1}'),
    "no type field": {b"v": b"2", b"d": b'{"name": "x"}'},
    "no version field": {b"t": b"test.unit.sample", b"d": b'{"name": "x"}'},
    "no body field": {b"t": b"test.unit.sample", b"v": b"2"},
    "no fields at all (a deleted entry)": {},
    "type not UTF-8": _fields(t=b"\xff\xfe"),
    "body not UTF-8": _fields(d=b'{"name": "\xff"}'),
}


@pytest.mark.parametrize("fields", POISON.values(), ids=POISON.keys())
def test_what_a_reader_cannot_understand_is_poison(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(Poison):
        decode(fields)


def test_poison_names_what_is_wrong() -> None:
    with pytest.raises(Poison, match="colour"):
        decode(_fields(d=b'{"name": "x", "colour": "red"}'))
    with pytest.raises(Poison, match="version 1 not understood"):
        decode(_fields(v=b"1"))


def test_a_body_with_every_field_of_another_version_still_decodes_by_name() -> None:
    body = orjson.dumps({"name": "x", "count": 2, "tags": [], "parent": 4})
    assert decode(_fields(d=body)) == Sample(name="x", count=2, parent=4)


def test_a_type_name_cannot_be_registered_by_two_classes() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        @message("test.unit.sample")
        @dataclasses.dataclass(frozen=True)
        class Other(Message):
            name: str
    # The registration that failed did not replace the first one.
    assert decode(_fields()) == Sample(name="x")
