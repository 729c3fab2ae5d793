"""Messages on the streams: small frozen dataclasses with an explicit encoding and a version.

On the wire a message is three stream fields: ``t`` (its type), ``v`` (its schema version) and
``d`` (its fields as JSON). Messages carry ids, hashes and paths, never file bytes. A reader that
meets an unknown type or a version it does not speak raises Poison: such a message can never
succeed, so it goes straight to the dead letters instead of cycling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, ClassVar, TypeVar

import orjson

from eva00.errors import Poison

Fields = Mapping[bytes | str, bytes | str]
M = TypeVar("M", bound="Message")

_REGISTRY: dict[str, type[Message]] = {}


@dataclasses.dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def to_fields(self) -> dict[str, bytes]:
        return {"t": self.TYPE.encode(), "v": str(self.VERSION).encode(),
                "d": orjson.dumps(dataclasses.asdict(self))}

    @classmethod
    def from_dict(cls: type[M], data: Mapping[str, Any]) -> M:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise Poison(f"{cls.TYPE}: unknown fields {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise Poison(f"{cls.TYPE}: {exc}") from None


def message(type_name: str, version: int = 1) -> Callable[[type[M]], type[M]]:
    """Register a Message subclass under its wire type name."""

    def register(cls: type[M]) -> type[M]:
        if type_name in _REGISTRY and _REGISTRY[type_name] is not cls:
            raise ValueError(f"message type {type_name!r} registered twice")
        cls.TYPE, cls.VERSION = type_name, version
        _REGISTRY[type_name] = cls
        return cls

    return register


def _text(fields: Fields, name: str) -> str:
    value = fields.get(name.encode(), fields.get(name))
    if value is None:
        raise Poison(f"message has no {name!r} field")
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError:
        # Bytes that are not UTF-8 can never decode: dead-letter at once instead of cycling.
        raise Poison(f"field {name!r} is not UTF-8") from None


def decode(fields: Fields) -> Message:
    type_name = _text(fields, "t")
    cls = _REGISTRY.get(type_name)
    if cls is None:
        raise Poison(f"unknown message type {type_name!r}")
    version = _text(fields, "v")
    if version != str(cls.VERSION):
        raise Poison(f"{type_name}: version {version} not understood (this reader speaks "
                     f"{cls.VERSION})")
    try:
        data = orjson.loads(_text(fields, "d"))
    except orjson.JSONDecodeError as exc:
        raise Poison(f"{type_name}: body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise Poison(f"{type_name}: body is not an object")
    return cls.from_dict(data)


# --- the pipeline's messages ---

class BudgetClass(str, Enum):
    """Rate-limit budget a poll is charged to (eva00/procore/limiter.py)."""

    SCHEDULED = "scheduled"
    WEBHOOK = "webhook"
    ON_DEMAND = "on_demand"


class PollMode:
    INCREMENTAL = "incremental"  # filters[updated_at] window from the cursor
    FULL = "full"  # every record (entities without an updated_at filter; full sync)
    RECONCILE = "reconcile"  # enumerate ids to find deletes
    ITEM = "item"  # one record (webhook hint, `eva00 sync --id`)


# A window whose counts keep disagreeing is re-run this often (PollJob.rerun), then left
# incomplete for the next poll; the full sync counts its own spaced retries from here.
MAX_RERUNS = 2


@message("poll", version=1)
@dataclasses.dataclass(frozen=True)
class PollJob(Message):
    """Fetch one kind for one project (or company-level: project_id None), page by page.

    A job is one page of work: the fetcher fetches ``page`` and enqueues the next page as a new
    job carrying the same poll_id and window, so a crash re-fetches at most the page in flight.
    """

    kind: str
    project_id: int | None
    mode: str
    budget: str
    reason: str = ""
    item_id: int | None = None
    requested_at: float = 0.0  # epoch seconds, for freshness figures
    poll_id: str = ""  # set by the fetcher on page 1
    page: int = 1
    window_from: str | None = None  # ISO-8601, server time
    window_to: str | None = None
    expected_total: int | None = None  # Total seen on page 1
    items_seen: int = 0  # records received on the pages before this one
    parent_id: int | None = None  # e.g. the drawing area whose drawings are listed
    rerun: int = 0  # how many times this window was re-run after a count mismatch
    cursor_to: str | None = None  # where the cursor goes when the poll completes (<= window_to)
    totals_agree: bool = True  # every page so far announced the Total of page 1
    run_id: str = ""  # a full-sync run this poll belongs to
    pending_key: str = ""  # the scheduler's "still pending" marker, cleared when the poll ends


@message("page", version=1)
@dataclasses.dataclass(frozen=True)
class PageMessage(Message):
    """One fetched page of one poll, from the fetcher to the differ.

    ``fetched_at`` is the server's Date of the answer: the differ never lets a page overwrite a
    row that a later fetch produced. On the last page ``pages_total`` is set and ``complete``
    says whether the enumeration was whole (counts agree with Total, no page failed); only a
    complete poll moves the cursor or soft-deletes anything.
    """

    poll_id: str
    kind: str
    project_id: int | None
    mode: str
    page: int
    fetched_at: str
    budget: str = BudgetClass.SCHEDULED
    items: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    ids: list[int] = dataclasses.field(default_factory=list)  # reconcile: every id on the page
    deleted_ids: list[int] = dataclasses.field(default_factory=list)  # confirmed deleted upstream
    list_hashes: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> hash of list record
    missing_ids: list[int] = dataclasses.field(default_factory=list)  # item polls that got 404
    is_last: bool = False
    pages_total: int | None = None
    complete: bool = False
    window_to: str | None = None
    parent_id: int | None = None
    run_id: str = ""
    requested_at: float = 0.0
    pending_key: str = ""
    # Daily logs: the date window (first, last day) this poll listed whole; what it did not list
    # within it is deleted upstream (the sheet's delete signal for daily reports).
    date_from: str | None = None
    date_to: str | None = None


@message("file", version=1)
@dataclasses.dataclass(frozen=True)
class FileJob(Message):
    """Download the file one record field points to (the downloader stores it by SHA-256)."""

    kind: str
    procore_id: int
    project_id: int | None
    url_field: str
    url: str
    procore_file_id: str = ""
    procore_version_id: str = ""
    expected_size_bytes: int | None = None
    priority: int = 5  # 1 highest: submittals 1, RFIs 2, drawings 3, photos 4, other 5


@message("ingest", version=1)
@dataclasses.dataclass(frozen=True)
class IngestEvent(Message):
    """A changed record or a new file, for the downstream ingestion pipeline."""

    what: str  # "record" | "file"
    kind: str
    procore_id: int
    project_id: int | None
    payload_hash: str = ""
    sha256: str = ""


# Messages of the file stages: a stored file announced to the thumbnailer and the text extractor.
# They carry a hash and a content type, never bytes or paths (the path follows from the hash).


@message("stored_file", version=1)
@dataclasses.dataclass(frozen=True)
class StoredFileJob(Message):
    """A file now in content-addressed storage, for a stage that derives something from it."""

    sha256: str
    content_type: str
    size_bytes: int
