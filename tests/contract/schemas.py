"""A schema per endpoint the client calls, written from the spec digest (docs/procore-oas.md), and
the small checker that holds an answer against it.

A schema names the answer's top-level form (``array``, ``object``, ``grouped``, ``wrapped``) and
the fields of one record with the digest's types: ``i`` integer, ``s`` string, ``b`` boolean,
``n`` number, ``d`` date, ``dt`` date-time, ``o`` object, ``a`` array, a dict for a nested object
and a one-element list for an array of objects. The spec marks no response field as required, so
a field may be absent or null; a field that is there must have the declared type. Only ``id`` is
demanded: the client cannot keep a record without it.

The fields listed are those the client reads (ids, ``updated_at``, deletion fields, file URL
fields) and the ones near them; the spec's other fields are not repeated. Where the client reads
a field the spec does not declare, it is in GAPS with the source that shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Fields = dict[str, Any]

ATTACHMENT = {"id": "i", "name": "s", "url": "s", "filename": "s"}  # @A
PERSON = {"id": "i", "login": "s", "name": "s"}  # @P
REF = {"id": "i", "name": "s"}  # @R


@dataclass(frozen=True)
class Schema:
    form: str  # array | object | grouped | wrapped
    record: Fields
    paged: bool = True  # the answer declares Total, Per-Page and Link
    group_key: str = ""  # grouped / wrapped: where the records are
    extra_forms: tuple[str, ...] = field(default_factory=tuple)


PROJECT = {"id": "i", "name": "s", "display_name": "s", "project_number": "s", "active": "b",
           "address": "s", "city": "s", "state_code": "s", "country_code": "s", "zip": "s",
           "start_date": "d", "completion_date": "d", "total_value": "s", "origin_id": "s",
           "company": REF, "created_at": "dt", "updated_at": "dt"}
VENDOR = {"id": "i", "name": "s", "abbreviated_name": "s", "trade_name": "s", "address": "s", "city": "s",
          "state_code": "s", "zip": "s", "country_code": "s", "business_phone": "s", "email_address": "s",
          "is_active": "b", "license_number": "s", "website": "s", "origin_id": "s", "logo": "s",
          "attachments": [ATTACHMENT], "created_at": "dt", "updated_at": "dt"}
USER = {"id": "i", "name": "s", "first_name": "s", "last_name": "s", "email_address": "s", "job_title": "s",
        "business_phone": "s", "mobile_phone": "s", "is_active": "b", "is_employee": "b", "vendor": REF,
        "last_login_at": "dt", "avatar": "s", "permission_template": "o", "created_at": "dt",
        "updated_at": "dt"}
SUBMITTAL_V11 = {"id": "i", "number": "s", "revision": "s", "formatted_number": "s", "title": "s",
                 "description": "s", "status": {"id": "i", "name": "s", "status": "s"}, "type": REF,
                 "specification_section": {"id": "i", "number": "s", "description": "s", "label": "s",
                                           "current_revision_id": "i"},
                 "submittal_manager": REF, "received_from": REF, "responsible_contractor": REF,
                 "ball_in_court": ["o"], "due_date": "d", "issue_date": "d", "received_date": "d",
                 "private": "b", "associated_attachments": [{"id": "i", "url": "s"}],
                 "created_at": "dt", "updated_at": "dt"}
SUBMITTAL_V10 = {k: v for k, v in SUBMITTAL_V11.items() if k != "associated_attachments"} | {
    "created_by": PERSON, "submittal_manager": PERSON, "received_from": PERSON, "ball_in_court": [PERSON]}
SUBMITTAL_SHOW = SUBMITTAL_V10 | {"attachments": [{"id": "i", "url": "s", "filename": "s"}],
                                  "approvers": ["o"], "distribution_members": [PERSON], "deleted_at": "dt"}
RFI = {"id": "i", "number": "s", "full_number": "s", "subject": "s", "status": "s", "due_date": "d",
       "initiated_at": "dt", "private": "b", "reference": "s", "assignee": PERSON, "assignees": ["o"],
       "rfi_manager": PERSON, "ball_in_court": PERSON, "ball_in_courts": [PERSON], "received_from": PERSON,
       "responsible_contractor": REF, "cost_impact": {"status": "s", "value": "n"},
       "schedule_impact": {"status": "s", "value": "i"}, "location": "o", "created_by": PERSON,
       "deleted": "b", "deleted_at": "dt", "created_at": "dt", "updated_at": "dt"}
RFI_SHOW = {k: v for k, v in RFI.items() if k != "created_by"} | {
    "questions": [{"id": "i", "plain_text_body": "s", "attachments": [ATTACHMENT], "answers": ["o"]}],
    "distribution_list": [PERSON], "specification_section": {"id": "i", "description": "s", "number": "s"}}
CHANGE_EVENT = {"id": "i", "number": "i", "alphanumeric_number": "s", "title": "s", "description": "s",
                "status": "s", "event_scope": "s", "event_type": "s", "origin_id": "s", "created_by": PERSON,
                "attachments": [{"id": "i", "url": "s", "filename": "s"}], "deleted_at": "dt",
                "created_at": "dt", "updated_at": "dt"}
COP = {"id": "i", "number": "s", "title": "s", "status": "s", "executed": "b", "contract_id": "i",
       "due_date": "d", "grand_total": "s", "deleted_at": "dt", "created_at": "dt", "updated_at": "dt"}
PCO = {"id": "i", "number": "s", "title": "s", "status": "s", "contract_id": "i", "grand_total": "s",
       "deleted_at": "dt", "created_at": "dt", "updated_at": "dt"}
PRIME = {"id": "i", "number": "s", "title": "s", "status": "s", "executed": "b", "due_date": "d",
         "grand_total": "s", "contract_id": "i", "created_at": "dt", "updated_at": "dt"}
MEETING_V11 = {"id": "i", "title": "s", "position": "i", "created_by_id": "i", "description": "s",
               "mode": "s", "location": "s", "is_private": "b", "occurred": "b", "starts_at": "dt",
               "ends_at": "dt", "created_at": "dt", "updated_at": "dt"}
DRAWING = {"id": "i", "discipline": "s", "number": "s", "title": "s", "obsolete": "b",
           "current_revision": {"id": "i", "pdf_url": "s", "png_url": "s", "thumbnail_url": "s",
                                "large_thumbnail_url": "s", "revision_number": "s", "updated_at": "dt"}}
DRAWING_REVISION = {"drawing_date": "d", "received_date": "d", "revision_number": "s", "floorplan": "b",
                    "drawing_set_id": "i", "drawing_id": "i"}
IMAGE = {"id": "i", "url": "s", "size": "i", "filename": "s", "description": "s", "thumbnail_url": "s",
         "taken_at": "dt", "image_category_id": "i", "permanently_deleted": "b", "private": "b",
         "width": "i", "height": "i", "location": "o", "created_at": "dt", "updated_at": "dt"}
DOCUMENT = {"id": "i", "name": "s", "name_with_path": "s", "parent_id": "i", "is_deleted": "b",
            "is_recycle_bin": "b", "document_type": "s", "is_tracked": "b", "private": "b",
            "file": {"current_version": {"id": "i", "url": "s", "size": "i"}, "file_type": "s"},
            "created_at": "dt", "updated_at": "dt"}
LOG = {"id": "i", "date": "d", "datetime": "dt", "deleted_at": "dt", "created_by": PERSON,
       "created_at": "dt", "updated_at": "dt"}
TASK = {"id": "i", "name": "s", "percentage": "i", "parent_id": "i", "resource_ids": ["i"],
        "start_datetime": "dt", "finish_datetime": "dt", "created_at": "dt", "updated_at": "dt"}
SPEC_REVISION = {"id": "i", "specification_section_id": "i", "specification_section_division_id": "i",
                 "specification_set_id": "i", "number": "s", "description": "s", "url": "s", "revision": "s",
                 "issued_date": "d", "received_date": "d", "updated_at": "s"}

# (kind, what) -> schema; what is list, show, deleted (the deleted listing or view) or parents.
SCHEMAS: dict[tuple[str, str], Schema] = {
    ("project", "list"): Schema("array", PROJECT),
    ("project", "show"): Schema("object", PROJECT | {"is_demo": "b", "logo_url": "s"}, paged=False),
    ("vendor", "list"): Schema("array", VENDOR),
    ("vendor", "deleted"): Schema("array", VENDOR | {"attachments": [{"id": "i", "url": "s"}]}),
    ("company_user", "list"): Schema("array", USER),
    ("company_user", "deleted"): Schema("array", {k: v for k, v in USER.items()
                                                  if k != "permission_template"}),
    ("project_user", "list"): Schema("array", USER),
    # `InactiveUser`, as at /rest/v1.0/companies/{company_id}/users/inactive
    ("project_user", "deleted"): Schema("array", {k: v for k, v in USER.items()
                                                  if k != "permission_template"}),
    ("spec_section", "list"): Schema("array", {"id": "i", "number": "s", "description": "s", "label": "s",
                                                "current_revision_id": "i"}),
    ("spec_section_revision", "list"): Schema("array", SPEC_REVISION),
    ("spec_section_revision", "parents"): Schema("array", {"id": "i", "number": "s", "description": "s",
                                                           "url": "s"}),
    ("submittal", "list"): Schema("array", SUBMITTAL_V11),
    ("submittal", "show"): Schema("object", SUBMITTAL_SHOW, paged=False),
    ("submittal", "deleted"): Schema("array", SUBMITTAL_V10),
    ("rfi", "list"): Schema("array", RFI),
    ("rfi", "show"): Schema("object", RFI_SHOW, paged=False),
    ("rfi", "deleted"): Schema("array", RFI),
    ("change_event", "list"): Schema("array", CHANGE_EVENT),
    ("change_event", "deleted"): Schema("array", CHANGE_EVENT),
    ("change_order_package", "list"): Schema("array", COP),
    ("change_order_package", "deleted"): Schema("array", COP),
    ("potential_change_order", "list"): Schema("array", PCO),
    ("potential_change_order", "deleted"): Schema("array", PCO),
    # Declared as ONE object (oneOf Default | Extended); served as an array: the client reads both.
    ("prime_change_order", "list"): Schema("array", PRIME, paged=False, extra_forms=("object",)),
    ("meeting", "list"): Schema("grouped", MEETING_V11, group_key="meetings"),
    ("meeting", "deleted"): Schema("wrapped", MEETING_V11, group_key="meetings"),
    ("drawing_area", "list"): Schema("array", {"id": "i", "name": "s", "drawings_count": "i",
                                               "description": "s", "drawing_sets": ["o"]}),
    ("drawing", "list"): Schema("array", DRAWING),
    ("drawing_set", "list"): Schema("array", {"id": "i", "project_id": "i", "name": "s", "date": "d",
                                              "position": "i", "created_at": "dt", "updated_at": "dt"}),
    ("drawing_revision", "list"): Schema("array", DRAWING_REVISION),
    ("image", "list"): Schema("array", IMAGE),
    ("image_category", "list"): Schema("array", {"id": "i", "name": "s", "count": "i", "cover_photo": "s",
                                                 "private": "b", "position": "i", "created_at": "dt",
                                                 "updated_at": "dt"}),
    ("document", "list"): Schema("array", DOCUMENT),
    ("document", "deleted"): Schema("array", DOCUMENT),
    ("daily_log_header", "list"): Schema("array", {"id": "i", "log_date": "d", "log_datetime": "dt",
                                                   "completed": "b", "completed_by": PERSON}),
    ("manpower_log", "list"): Schema("array", LOG | {"num_workers": "i", "num_hours": "s", "man_hours": "s",
                                                     "notes": "s", "vendor": REF}),
    ("notes_log", "list"): Schema("array", LOG | {"comment": "s"}),
    ("weather_log", "list"): Schema("array", LOG | {"temperature": "s", "sky": "s", "wind": "s",
                                                    "precipitation": "s", "ground": "s", "comments": "s"}),
    ("delivery_log", "list"): Schema("array", LOG | {"tracking_number": "s", "contents": "s",
                                                     "comments": "s"}),
    ("task", "list"): Schema("array", TASK),
}

# Fields the client reads that the spec does not declare on that endpoint, and who shows them.
GAPS: dict[str, dict[str, str]] = {
    "drawing_revision": {
        "id": "the declared DrawingRevision has no id (the PATCH answer DrawingRevision1 has one)",
        "pdf_url": "not in the spec; Procore's developer docs show pdf_url on drawing revisions",
        "updated_at": "not in the declared DrawingRevision schema",
    },
    "daily_log_header": {
        "updated_at": "the header schema has no created_at or updated_at",
        "date": "the header has log_date; the replica's date windows read date, then log_date",
    },
    "spec_section": {"updated_at": "the schema has no timestamps"},
    "task": {"updated_at": "the task_items list has none; schedule tasks (ours) declare it"},
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_answer(schema: Schema, body: Any) -> list[str]:
    """Problems of one answer against its schema (empty when it holds)."""
    form = form_of(body, schema.group_key)
    if form != schema.form and form not in schema.extra_forms:
        return [f"top level is {form}, the spec declares {schema.form}"]
    problems: list[str] = []
    for index, record in enumerate(records_of(body, form, schema.group_key)):
        if not isinstance(record.get("id"), int) and "id" in schema.record:
            problems.append(f"[{index}] has no integer id")
        problems += check_fields(schema.record, record, f"[{index}]")
    return problems


def form_of(body: Any, group_key: str = "meetings") -> str:
    if isinstance(body, list):
        if body and all(isinstance(e, dict) and "group_title" in e and isinstance(e.get(group_key), list)
                        for e in body):
            return "grouped"
        return "array"
    if isinstance(body, dict):
        return "wrapped" if set(body) == {group_key} else "object"
    return type(body).__name__


def records_of(body: Any, form: str, group_key: str) -> list[dict[str, Any]]:
    if form == "grouped":
        return [r for group in body for r in group[group_key]]
    if form == "wrapped":
        return list(body[group_key])
    if form == "object":
        return [body]
    return [r if isinstance(r, dict) else {"<element>": r} for r in body]


def check_fields(declared: Fields, value: dict[str, Any], where: str) -> list[str]:
    problems = []
    for name, kind in declared.items():
        if name in value and value[name] is not None and not _has_type(value[name], kind):
            problems.append(f"{where}.{name} = {value[name]!r:.60} is not {_name(kind)}")
        elif isinstance(kind, dict) and isinstance(value.get(name), dict):
            problems += check_fields(kind, value[name], f"{where}.{name}")
        elif isinstance(kind, list) and isinstance(kind[0], dict) and isinstance(value.get(name), list):
            for index, element in enumerate(value[name]):
                if isinstance(element, dict):
                    problems += check_fields(kind[0], element, f"{where}.{name}[{index}]")
    return problems


def _has_type(value: Any, kind: Any) -> bool:
    if isinstance(kind, dict) or kind == "o":
        return isinstance(value, dict)
    if isinstance(kind, list) or kind == "a":
        return isinstance(value, list) and (
            not isinstance(kind, list) or all(v is None or _has_type(v, kind[0]) for v in value))
    return {
        "i": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "n": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "s": lambda v: isinstance(v, str),
        "b": lambda v: isinstance(v, bool),
        "d": lambda v: isinstance(v, str) and bool(_DATE.match(v)),
        "dt": _is_datetime,
    }[kind](value)


def _is_datetime(value: Any) -> bool:
    from datetime import datetime

    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _name(kind: Any) -> str:
    if isinstance(kind, dict):
        return "an object"
    if isinstance(kind, list):
        return f"an array of {_name(kind[0])}"
    return {"i": "an integer", "n": "a number", "s": "a string", "b": "a boolean", "d": "a date",
            "dt": "a date-time", "o": "an object", "a": "an array"}[kind]
