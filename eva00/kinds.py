"""Every Procore resource the replica holds: its kind name and the table that stores it.

The kind is the contract between the simulator's ground truth, the endpoint registry, the differ
and the schema: one name per Procore resource, one table per entity family of the seed design.
Tables that hold several resources tell them apart by the ``kind`` column.
"""

from __future__ import annotations

from types import MappingProxyType

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

# Kinds that live at company level (no project_id).
COMPANY_KINDS = frozenset({"vendor", "company_user"})


def table_for(kind: str) -> str:
    try:
        return KIND_TABLE[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}") from None
