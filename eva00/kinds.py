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
