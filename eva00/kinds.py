"""Every Procore resource the replica holds: its kind name and the table that stores it.

The kind is the contract between the simulator's ground truth, the endpoint registry, the differ
and the schema: one name per Procore resource, one table per entity family of the seed design.
Tables that hold several resources tell them apart by the ``kind`` column.

The second half says where files hide in records, which fields of which kind point at a file.
Records carry opaque URLs (`pdf_url`, `url`, `file_versions[].url`, `attachments[].url`, also
nested in RFI questions and replies). A link is named by a stable path built from ids, not list
positions (`attachments[id=12].url`), so reordered attachments do not look like new files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from eva00.errors import Poison

# kind -> table
KIND_TABLE = MappingProxyType(
    {
        "project": "projects",
        "vendor": "companies",
        "company_user": "contacts",
        "project_user": "contacts",
        "spec_section": "spec_sections",
        "spec_section_revision": "spec_sections",
        "submittal": "submittals",
        "rfi": "rfis",
        "change_event": "change_orders",
        "change_order_package": "change_orders",
        "potential_change_order": "change_orders",
        "prime_change_order": "change_orders",
        "meeting": "meetings",
        "drawing_area": "drawings",
        "drawing": "drawings",
        "drawing_set": "drawings",
        "drawing_revision": "drawing_revisions",
        "image": "photos",
        "image_category": "photos",
        "document": "documents",
        "daily_log_header": "daily_logs",
        "manpower_log": "daily_logs",
        "notes_log": "daily_logs",
        "weather_log": "daily_logs",
        "delivery_log": "daily_logs",
        "task": "schedule_tasks",
    }
)

ENTITY_TABLES = tuple(dict.fromkeys(KIND_TABLE.values()))


def require_known_kind(kind: str) -> str:
    """A message naming a kind the replica has no table for can never succeed: poison."""
    if kind not in KIND_TABLE:
        raise Poison(f"unknown kind {kind!r}")
    return kind



def table_for(kind: str) -> str:
    try:
        return KIND_TABLE[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}") from None

# The seed's entity families (their poll intervals are configured per family) and their kinds.
# "drawings" covers the drawing_revisions table too: revisions are polled with the drawings.
FAMILY_KINDS = MappingProxyType(
    {
        "projects": ("project",),
        "companies": ("vendor",),
        "contacts": ("company_user", "project_user"),
        "spec_sections": ("spec_section", "spec_section_revision"),
        "submittals": ("submittal",),
        "rfis": ("rfi",),
        "change_orders": ("change_event", "change_order_package", "potential_change_order",
                          "prime_change_order"),
        "meetings": ("meeting",),
        "drawings": ("drawing_area", "drawing", "drawing_set", "drawing_revision"),
        "photos": ("image", "image_category"),
        "documents": ("document",),
        "daily_logs": ("daily_log_header", "manpower_log", "notes_log", "weather_log",
                       "delivery_log"),
        "schedule_tasks": ("task",),
    }
)

# Kinds listed once per company rather than once per project.
COMPANY_LEVEL_KINDS = frozenset({"project", "vendor", "company_user"})


def family_of(kind: str) -> str:
    for family, kinds in FAMILY_KINDS.items():
        if kind in kinds:
            return family
    raise ValueError(f"unknown kind {kind!r}")


# --- Where files hide in Procore records: which fields of which kind point at a file. ---

# The seed's download priority: submittals > RFIs > drawings > photos > other (1 is highest).
PRIORITY = {"submittal": 1, "rfi": 2, "drawing_revision": 3, "image": 4}
# Top-level URL fields that are the record's own file.
TOP_LEVEL = {"drawing_revision": ("pdf_url",), "image": ("url",), "spec_section_revision": ("url",)}
# Lists whose elements are files wherever they appear in a record.
FILE_LISTS = ("attachments", "file_versions")


@dataclass(frozen=True)
class FileRef:
    url_field: str
    url: str
    file_id: str = ""
    version_id: str = ""
    size_bytes: int | None = None
    priority: int = 5


def file_refs(kind: str, payload: Mapping[str, Any]) -> list[FileRef]:
    priority = PRIORITY.get(kind, 5)
    refs = []
    for field in TOP_LEVEL.get(kind, ()):
        url = payload.get(field)
        if isinstance(url, str) and _is_url(url):
            refs.append(FileRef(field, url, str(payload.get("file_id") or ""), "",
                                _size(payload), priority))
    for path, element in _file_elements(payload, ""):
        url = element.get("url")
        if isinstance(url, str) and _is_url(url):
            refs.append(FileRef(f"{path}.url", url, str(element.get("file_id") or element.get("id") or ""),
                                str(element.get("version_id") or ""), _size(element), priority))
    return _unique(refs)


def _file_elements(node: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if key in FILE_LISTS and isinstance(value, list):
                for index, element in enumerate(value):
                    if isinstance(element, Mapping):
                        ident = element.get("id", f"#{index}")
                        yield f"{child}[id={ident}]", element
                        yield from _file_elements(element, f"{child}[id={ident}]")
            elif key == "current_version" and isinstance(value, Mapping):
                yield child, value
            else:
                yield from _file_elements(value, child)
    elif isinstance(node, list):
        for index, element in enumerate(node):
            ident = element.get("id", index) if isinstance(element, Mapping) else index
            yield from _file_elements(element, f"{path}[id={ident}]")


def _unique(refs: list[FileRef]) -> list[FileRef]:
    seen: set[tuple[str, str]] = set()
    result = []
    for ref in refs:
        key = (ref.url_field, ref.version_id)
        if key not in seen:
            seen.add(key)
            result.append(ref)
    return result


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


def _size(node: Mapping[str, Any]) -> int | None:
    for key in ("size", "file_size", "size_bytes"):
        value = node.get(key)
        if isinstance(value, int) and value >= 0:
            return value
    return None
