"""The simulator's data: every record (live and deleted), its list and show objects, and the
ground truth the sync's checker compares its replica with.

Records live in buckets of one kind and project, in id order (Procore's default list order); a
deleted record stays in its bucket with ``deleted_epoch`` set, so recycle-bin views can show it.
A record's list object is serialised once and cached until it changes; the live view of a bucket
is cached until a record in it changes, so a page costs a slice and a join.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from eva00.simulator.blobs import BlobRegistry
from eva00.simulator.clock import iso
from eva00.simulator.truth import truth_hash

SHOW_KINDS = frozenset({"rfi", "submittal"})
# Kinds whose deletion shows in some view (recycle bin, inactive list, ...) and what it changes
# there; the other kinds' deletions show only as absence.
INACTIVE_OVERLAY = {"project": {"active": False, "status_name": "Inactive"},
                    "vendor": {"is_active": False}, "company_user": {"is_active": False},
                    "project_user": {"is_active": False},
                    "document": {"is_deleted": True, "is_in_recycle_bin": True}}
DELETED_AT_KINDS = frozenset({"rfi", "change_event", "change_order_package", "potential_change_order"})
# Deleted meetings (deleted_only) and the submittal recycle bin show no deletion field: the
# schemas of those lists have none.
SIGNALLED_KINDS = DELETED_AT_KINDS | frozenset(INACTIVE_OVERLAY) | {"meeting", "submittal"}
FILE_URL = re.compile(r"/rest/v1\.0/files/(\d+)/download$")

Key = tuple[str, int | None]


@dataclass
class Record:
    kind: str
    id: int
    project_id: int | None
    payload: dict[str, Any]
    show_extra: dict[str, Any] | None = None
    parent_id: int | None = None
    day: str | None = None
    created_epoch: int = 0
    updated_epoch: int = 0
    deleted_epoch: int | None = None
    _list_bytes: bytes | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_epoch is not None

    def list_object(self) -> dict[str, Any]:
        """The object as list endpoints return it (deleted views overlay their signals)."""
        if self.deleted_epoch is None:
            return self.payload
        overlay: dict[str, Any] = {"updated_at": iso(self.deleted_epoch)}
        if self.kind in DELETED_AT_KINDS:
            overlay["deleted_at"] = iso(self.deleted_epoch)
        overlay.update(INACTIVE_OVERLAY.get(self.kind, {}))  # type: ignore[call-overload]
        return {**self.payload, **overlay}

    def list_bytes(self) -> bytes:
        cached = self._list_bytes
        if cached is None:
            cached = orjson.dumps(self.list_object())
            self._list_bytes = cached
        return cached

    def show_object(self) -> dict[str, Any]:
        return {**self.payload, **(self.show_extra or {})}

    def truth_object(self) -> dict[str, Any]:
        """What a client holds for this record: the show for RFIs and submittals while live, the
        deleted view's object where one exists, else the last live list object."""
        if self.deleted_epoch is not None and self.kind in SIGNALLED_KINDS:
            return self.list_object()
        if self.kind in SHOW_KINDS:
            return self.show_object()
        return self.payload

    def touch(self, epoch: int) -> None:
        self.updated_epoch = epoch
        self.payload["updated_at"] = iso(epoch)
        self._list_bytes = None


class Store:
    def __init__(self, company_id: int, blobs: BlobRegistry) -> None:
        self.company_id = company_id
        self.blobs = blobs
        self.lock = threading.RLock()
        self._buckets: dict[Key, list[Record]] = {}
        self._index: dict[tuple[str, int, int | None], Record] = {}
        self._live: dict[Key, list[Record]] = {}
        self.forbidden: set[int] = set()
        self.version = 0

    # --- writing ---

    def add(self, record: Record) -> None:
        with self.lock:
            key = (record.kind, record.project_id)
            self._buckets.setdefault(key, []).append(record)
            self._index[(record.kind, record.id, self._scope(record.kind, record.project_id))] = record
            live = self._live.get(key)
            if live is not None and record.deleted_epoch is None:
                self._live[key] = [*live, record]
            else:
                self._live.pop(key, None)
            self.version += 1

    def changed(self, record: Record) -> None:
        record._list_bytes = None
        self._live.pop((record.kind, record.project_id), None)
        self.version += 1

    @staticmethod
    def _scope(kind: str, project_id: int | None) -> int | None:
        return project_id if kind == "project_user" else None

    # --- reading ---

    def bucket(self, kind: str, project_id: int | None) -> list[Record]:
        return self._buckets.get((kind, project_id), [])

    def live(self, kind: str, project_id: int | None) -> list[Record]:
        key = (kind, project_id)
        found = self._live.get(key)
        if found is None:
            with self.lock:
                found = [r for r in self._buckets.get(key, []) if r.deleted_epoch is None]
                self._live[key] = found
        return found

    def deleted(self, kind: str, project_id: int | None) -> list[Record]:
        return [r for r in self.bucket(kind, project_id) if r.deleted_epoch is not None]

    def get(self, kind: str, record_id: int, project_id: int | None = None) -> Record | None:
        return self._index.get((kind, record_id, self._scope(kind, project_id)))

    def projects(self) -> list[Record]:
        return self.bucket("project", None)

    def project(self, project_id: int) -> Record | None:
        return self.get("project", project_id)

    def all_records(self) -> Iterator[Record]:
        for bucket in list(self._buckets.values()):
            yield from list(bucket)

    def count(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    # --- ground truth ---

    def truth(self, kinds: set[str] | None, project_id: int | None) -> dict[str, Any]:
        records, files = [], []
        for record in self.all_records():
            if kinds is not None and record.kind not in kinds:
                continue
            if project_id is not None and record.project_id != project_id and not (
                    record.kind == "project" and record.id == project_id):
                continue
            obj = record.truth_object()
            records.append({"kind": record.kind, "id": record.id, "project_id": record.project_id,
                            "payload_hash": truth_hash(obj), "is_deleted": record.is_deleted,
                            "updated_at": iso(record.deleted_epoch if record.deleted_epoch is not None
                                              and record.kind in SIGNALLED_KINDS else record.updated_epoch),
                            "deleted_at": iso(record.deleted_epoch) if record.deleted_epoch else None})
            if record.kind == "task":
                records[-1]["payload_hash_v2"] = truth_hash(v2_object(record.payload))
            files += self._file_rows(record, obj)
        return {"records": records, "files": files, "forbidden_projects": sorted(self.forbidden)}

    def _file_rows(self, record: Record, obj: dict[str, Any]) -> list[dict[str, Any]]:
        rows = []
        for url_field, url in file_links(obj, ""):
            match = FILE_URL.search(url)
            blob = self.blobs.get(int(match.group(1))) if match else None
            if blob is None:
                continue
            rows.append({"file_id": str(blob.file_id), "kind_of_parent": record.kind,
                         "parent_id": record.id, "project_id": record.project_id,
                         "url_field": url_field, "url": url, "sha256": self.blobs.sha256(blob),
                         "size_bytes": blob.size, "content_type": blob.content_type})
        return rows


def file_links(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(url_field, url) of every file link in an object, named by field names and element ids (a
    list position only where an element has no id): ``pdf_url``, ``attachments[id=7].url``,
    ``questions[id=3].answers[id=9].attachments[id=4].url``."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and FILE_URL.search(value):
                yield child, value
            elif isinstance(value, list):
                for index, element in enumerate(value):
                    ident = element.get("id", f"#{index}") if isinstance(element, dict) else index
                    yield from file_links(element, f"{child}[id={ident}]")
            elif isinstance(value, dict):
                yield from file_links(value, child)


V2_ID_FIELDS = ("id", "parent_id")


def v2_object(payload: dict[str, Any]) -> dict[str, Any]:
    """The v2.0 shape of a record: every id a string."""
    obj = dict(payload)
    for name in V2_ID_FIELDS:
        if obj.get(name) is not None:
            obj[name] = str(obj[name])
    if "resource_ids" in obj:
        obj["resource_ids"] = [str(i) for i in obj["resource_ids"]]
    return obj
