"""Procore webhook resource names: which kind each one re-fetches, and which triggers we register.

One table, read by the parser (is this a resource we replicate?), the intake (which kind to fetch)
and `eva00 webhooks register` (which triggers to create). Procore names resources in plural title
case ("RFIs", "Change Order Packages"); the kind is the replica's name for it (eva00/kinds.py).
"""

from __future__ import annotations

from types import MappingProxyType

from eva00.kinds import COMPANY_LEVEL_KINDS, KIND_TABLE

CREATE, UPDATE, DELETE = "create", "update", "delete"
ALL_EVENTS = (CREATE, UPDATE, DELETE)

# Procore resource name -> kind re-fetched when it changes.
RESOURCE_KINDS = MappingProxyType(
    {
        "Projects": "project",
        "Company Vendors": "vendor",
        "Company Users": "company_user",
        "Project Users": "project_user",
        "Specification Sections": "spec_section",
        "Specification Section Revisions": "spec_section_revision",
        "Submittals": "submittal",
        "RFIs": "rfi",
        "Change Events": "change_event",
        "Change Order Packages": "change_order_package",
        "Potential Change Orders": "potential_change_order",
        "Prime Change Orders": "prime_change_order",
        "Meetings": "meeting",
        "Drawing Areas": "drawing_area",
        "Drawings": "drawing",
        "Drawing Sets": "drawing_set",
        "Images": "image",
        "Image Categories": "image_category",
        "Project Files": "document",
        "Daily Logs": "daily_log_header",
        "Manpower Logs": "manpower_log",
        "Notes Logs": "notes_log",
        "Weather Logs": "weather_log",
        "Delivery Logs": "delivery_log",
        "Tasks": "task",
    }
)

# Child resources whose change is a change of their parent record (the replica stores the parent's
# show payload, which embeds the children): child name -> parent resource name. The parent's id
# comes from the event's related_resources (v3.0) or its metadata; without it the child's event is
# recorded and ignored (the parent's own update event and the poll cover it).
PARENT_RESOURCES = MappingProxyType({"RFI Replies": "RFIs"})

# Events Procore offers per resource where it is not all three (its webhook resources list;
# e.g. Company Users and Projects have no delete trigger). Absent means create, update and delete.
OFFERED_EVENTS = MappingProxyType(
    {
        "Projects": (CREATE, UPDATE),
        "Company Vendors": (CREATE, UPDATE),
        "Company Users": (CREATE, UPDATE),
        "Specification Sections": (CREATE, UPDATE),
        "Weather Logs": (CREATE, UPDATE),
    }
)

# The seed design's subscriptions: registered in every deployment; the rest are added where the
# account offers them (a trigger Procore refuses is reported and skipped).
SEED_TRIGGERS: tuple[tuple[str, str], ...] = (
    ("Submittals", CREATE), ("Submittals", UPDATE),
    ("RFIs", CREATE), ("RFIs", UPDATE),
    ("Drawings", CREATE),
    ("Change Order Packages", CREATE), ("Change Order Packages", UPDATE),
    ("Daily Logs", CREATE), ("Daily Logs", UPDATE),
)


def kind_for(resource_name: str) -> str | None:
    return RESOURCE_KINDS.get(resource_name)


def is_company_level(kind: str) -> bool:
    return kind in COMPANY_LEVEL_KINDS


def wanted_triggers() -> list[tuple[str, str]]:
    """Every (resource name, event type) we subscribe to: the seed's first, then the rest."""
    wanted = list(SEED_TRIGGERS)
    for name in (*RESOURCE_KINDS, *PARENT_RESOURCES):
        for event in OFFERED_EVENTS.get(name, ALL_EVENTS):
            if (name, event) not in wanted:
                wanted.append((name, event))
    return wanted


def _check() -> None:
    unknown = sorted(set(RESOURCE_KINDS.values()) - set(KIND_TABLE))
    if unknown:
        raise ValueError(f"webhook resources map to unknown kinds {unknown}")


_check()
