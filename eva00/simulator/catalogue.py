"""The Procore resources the simulator serves, written from Procore's API rather than taken from
the sync: a test holds this catalogue against the sync's kinds, so a kind the sync expects and the
simulator never serves (or the reverse) fails there instead of passing silently.

Each resource has the simulator's kind name (one per Procore resource: the project users list is
not the company users list, a drawing revision is not a drawing), whether Procore lists it once
per company rather than once per project, and the name Procore's webhooks announce it under.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Resource:
    kind: str
    webhook_name: str
    company_level: bool = False


# The order is the order churn draws kinds from, so it is part of a seeded run's answers.
RESOURCES = (
    Resource("project", "Projects", company_level=True),
    Resource("vendor", "Company Vendors", company_level=True),
    Resource("company_user", "Company Users", company_level=True),
    Resource("project_user", "Project Users"),
    Resource("spec_section", "Specification Sections"),
    Resource("spec_section_revision", "Specification Section Revisions"),
    Resource("submittal", "Submittals"),
    Resource("rfi", "RFIs"),
    Resource("change_event", "Change Events"),
    Resource("change_order_package", "Change Order Packages"),
    Resource("potential_change_order", "Potential Change Orders"),
    Resource("prime_change_order", "Prime Change Orders"),
    Resource("meeting", "Meetings"),
    Resource("drawing_area", "Drawing Areas"),
    Resource("drawing", "Drawings"),
    Resource("drawing_set", "Drawing Sets"),
    # Procore has no webhook resource for revisions: a new revision is an update of its Drawing.
    Resource("drawing_revision", "Drawings"),
    Resource("image", "Images"),
    Resource("image_category", "Image Categories"),
    Resource("document", "Project Files"),
    Resource("daily_log_header", "Daily Logs"),
    Resource("manpower_log", "Manpower Logs"),
    Resource("notes_log", "Notes Logs"),
    Resource("weather_log", "Weather Logs"),
    Resource("delivery_log", "Delivery Logs"),
    Resource("task", "Tasks"),
)

KINDS = tuple(resource.kind for resource in RESOURCES)
COMPANY_LEVEL_KINDS = frozenset(resource.kind for resource in RESOURCES if resource.company_level)
# Procore webhook resource name per kind.
RESOURCE_NAMES = MappingProxyType({resource.kind: resource.webhook_name for resource in RESOURCES})
