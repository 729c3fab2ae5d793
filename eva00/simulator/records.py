"""Entity payloads with Procore's field shapes: one builder per kind, shared by the seeded
generator and the mutation engine (a created record looks like a generated one).

A builder returns a Draft: the list payload, what the show endpoint adds (RFIs and submittals),
the record's parent (drawing area, folder) and day (daily logs). Timestamps are filled in by the
caller. Files are registered in the blob registry and referenced by API-host download URLs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eva00.simulator.blobs import BlobRegistry
from eva00.simulator.clock import day, iso

WORDS = ("north", "south", "tower", "level", "core", "shell", "podium", "garage", "atrium", "roof",
         "east", "west", "lobby", "stair", "facade", "slab", "footing", "retaining", "wall", "duct",
         "conduit", "glazing", "steel", "concrete", "rebar", "drywall", "fireproofing", "elevator")
FIRST = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi", "Lena",
         "Mateo", "Nia", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Vik", "Wen", "Yara")
LAST = ("Alvarez", "Brooks", "Chandra", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
        "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Silva")
TRADES = ("Concrete", "Electrical", "Mechanical", "Plumbing", "Steel", "Glazing", "Roofing", "Sitework")
CITIES = (("Austin", "TX"), ("Denver", "CO"), ("Portland", "OR"), ("Raleigh", "NC"), ("Boise", "ID"))
DISCIPLINES = ("Architectural", "Structural", "Mechanical", "Electrical", "Plumbing", "Civil")


@dataclass
class Draft:
    payload: dict[str, Any]
    show_extra: dict[str, Any] | None = None
    parent_id: int | None = None
    day: str | None = None


@dataclass
class World:
    """What builders draw on: the seeded generator, id counters, people and files."""

    rng: random.Random
    file_base: str  # the file host: record file URLs point here (bearer token, then a redirect)
    blobs: BlobRegistry
    file_size_bytes: int
    company_id: int
    company_name: str = "Ikari Construction"
    ids: dict[str, int] = field(default_factory=dict)
    people: list[dict[str, Any]] = field(default_factory=list)
    vendors: list[dict[str, Any]] = field(default_factory=list)

    def next_id(self, counter: str, base: int) -> int:
        value = self.ids.get(counter, base) + 1
        self.ids[counter] = value
        return value

    def words(self, count: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=count)).capitalize()

    def pick(self, items: Any) -> Any:
        return items[int(self.rng.random() * len(items))]

    def person(self) -> dict[str, Any] | None:
        return dict(self.pick(self.people)) if self.people else None

    def vendor(self) -> dict[str, Any] | None:
        if not self.vendors:
            return None
        chosen = self.pick(self.vendors)
        return {"id": chosen["id"], "name": chosen["name"]}

    def file_url(self, file_id: int) -> str:
        return f"{self.file_base}/rest/v1.0/files/{file_id}/download"

    def new_file(self, fmt: str, title: str, scale: float = 1.0) -> dict[str, Any]:
        size = int(self.file_size_bytes * scale * self.rng.uniform(0.5, 1.5))
        blob = self.blobs.add(fmt, size, title)
        return {"file_id": blob.file_id, "url": self.file_url(blob.file_id), "size": blob.size,
                "name": blob.filename, "content_type": blob.content_type}

    def attachment(self, title: str) -> dict[str, Any]:
        made = self.new_file("pdf", title)
        return {"id": self.next_id("attachment", 22_000_000), "name": made["name"],
                "filename": made["name"], "url": made["url"], "size": made["size"]}


# Where each kind's ids start; some exceed 32 bits on purpose (Procore's do).
ID_BASE = {
    "project": 10_000, "vendor": 200_000, "company_user": 300_000, "spec_section": 1_000_000,
    "spec_section_revision": 1_100_000, "submittal": 2_000_000, "rfi": 3_000_000,
    "change_event": 4_000_000, "change_order_package": 4_100_000, "potential_change_order": 4_200_000,
    "prime_change_order": 4_300_000, "meeting": 5_000_000, "drawing_area": 6_000_000,
    "drawing": 6_100_000, "drawing_set": 6_200_000, "drawing_revision": 6_300_000,
    "image": 5_000_000_000, "image_category": 8_000_000, "document": 9_000_000_000,
    "daily_log_header": 10_000_000, "manpower_log": 11_000_000, "notes_log": 12_000_000,
    "weather_log": 13_000_000, "delivery_log": 14_000_000, "task": 15_000_000,
}

Builder = Callable[[World, dict[str, Any]], Draft]


def person_ref(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "login": user["email_address"], "name": user["name"]}


def project(w: World, ctx: dict[str, Any]) -> Draft:
    city, state = w.pick(CITIES)
    name = f"{w.words(2)} {ctx['number']:03d}"
    return Draft({
        "name": name, "display_name": f"{ctx['number']:03d} - {name}",
        "project_number": f"{ctx['number']:03d}", "address": f"{w.rng.randint(1, 9999)} Main St",
        "city": city, "state_code": state, "country_code": "US", "zip": f"{w.rng.randint(10000, 99999)}",
        "active": True, "status_name": "Active",
        "stage_name": w.pick(("Bidding", "Course of Construction")),
        "start_date": day(ctx["created"]), "completion_date": None,
        "total_value": f"{w.rng.randint(1, 900) * 100000}.0", "origin_id": None,
        "company": {"id": w.company_id, "name": w.company_name}})


def vendor(w: World, ctx: dict[str, Any]) -> Draft:
    city, state = w.pick(CITIES)
    trade = w.pick(TRADES)
    name = f"{w.pick(LAST)} {trade} {w.pick(('LLC', 'Inc.', 'Co.'))}"
    return Draft({
        "name": name, "abbreviated_name": name.split()[0][:6].upper(), "trade_name": trade,
        "address": f"{w.rng.randint(1, 999)} Industrial Way", "city": city, "state_code": state,
        "zip": f"{w.rng.randint(10000, 99999)}", "country_code": "US",
        "business_phone": f"+1 555 {w.rng.randint(1000000, 9999999)}",
        "email_address": f"office@{name.split()[0].lower()}.example", "is_active": True,
        "license_number": f"L-{w.rng.randint(10000, 99999)}", "website": None, "origin_id": None})


def company_user(w: World, ctx: dict[str, Any]) -> Draft:
    first, last = w.pick(FIRST), w.pick(LAST)
    return Draft({
        "name": f"{first} {last}", "first_name": first, "last_name": last,
        "email_address": f"{first.lower()}.{last.lower()}{ctx['id'] % 1000}@example.com",
        "job_title": w.pick(("Project Manager", "Superintendent", "Engineer", "Foreman")),
        "business_phone": None, "mobile_phone": f"+1 555 {w.rng.randint(1000000, 9999999)}",
        "is_active": True, "is_employee": w.rng.random() < 0.6, "vendor": w.vendor(),
        "last_login_at": None})


def project_user(w: World, ctx: dict[str, Any]) -> Draft:
    user = ctx["user"]
    keep = ("name", "first_name", "last_name", "email_address", "job_title", "vendor", "is_employee")
    payload = {key: user[key] for key in keep}
    payload["is_active"] = True
    payload["permission_template"] = {"id": w.rng.randint(1, 6),
                                      "name": w.pick(("Architect", "Owner", "Subcontractor"))}
    return Draft(payload)


def spec_section(w: World, ctx: dict[str, Any]) -> Draft:
    division = w.rng.randint(1, 33)
    return Draft({"number": f"{division:02d} {w.rng.randint(10, 99)} {w.rng.randint(0, 9)}0",
                  "description": w.words(3), "label": None, "current_revision_id": None,
                  "specification_section_division_id": division_id(ctx["project_id"], division),
                  "specification_set_id": 1})


def division_id(project_id: int | None, division: int) -> int:
    """Divisions are per project (the spec lists them per project): ids unique across projects."""
    return 90_000_000 + (project_id or 0) * 100 + division


def spec_section_revision(w: World, ctx: dict[str, Any]) -> Draft:
    made = w.new_file("pdf", f"Spec {ctx['section']['number']} rev {ctx.get('revision', 0)}")
    return Draft({"specification_section_id": ctx["section"]["id"], "revision": str(ctx.get("revision", 0)),
                  "specification_section_division_id": ctx["division_id"], "number": ctx["section"]["number"],
                  "description": ctx["section"]["description"], "issued_date": day(ctx["created"]),
                  "received_date": day(ctx["created"]), "url": made["url"], "file_size": made["size"]})


def submittal(w: World, ctx: dict[str, Any]) -> Draft:
    number = ctx["id"] % 1000
    statuses = ("Open", "Closed", "Draft", "Approved")
    status = w.pick(statuses)
    payload = {
        "number": f"{number:03d}", "revision": "0", "formatted_number": f"#{number:03d}.00",
        "title": w.words(4), "description": w.words(8),
        "status": {"id": statuses.index(status) + 1, "name": status, "status": status.lower()},
        "type": {"id": 1, "name": w.pick(("Shop Drawing", "Product Data", "Sample"))},
        "specification_section": ctx.get("section"), "submittal_manager": w.person(),
        "received_from": w.person(), "responsible_contractor": w.vendor(), "ball_in_court": [w.person()],
        "due_date": day(ctx["created"] + 14 * 86400), "issue_date": day(ctx["created"]),
        "received_date": None, "private": False,
        "project": {"id": ctx["project_id"], "name": ctx["project_name"]}}
    approvers = [{"id": w.next_id("approver", 24_000_000), "user": w.person(),
                  "response": {"id": 1, "name": w.pick(("Pending", "Approved", "Revise and Resubmit"))},
                  "sent_date": day(ctx["created"]), "returned_date": None, "comment": w.words(5),
                  "workflow_group_number": step} for step in range(w.rng.randint(1, 3))]
    extra = {"attachments": [w.attachment(f"Submittal {number:03d} {i}")
                             for i in range(w.rng.randint(0, 2))],
             "approvers": approvers,
             "workflow_data": {"current_step": 0, "steps": len(approvers), "ball_in_court_role": "approver"},
             "distribution_members": [w.person()]}
    return Draft(payload, extra)


def _post(w: World, text: str, created: int, official: bool | None, title: str) -> dict[str, Any]:
    post: dict[str, Any] = {"id": w.next_id("rfi_post", 20_000_000), "body": f"<p>{text}</p>",
                            "plain_text_body": text, "created_by": w.person(), "created_at": iso(created)}
    if official is not None:
        post["official"] = official
    post["attachments"] = [w.attachment(title) for _ in range(1 if w.rng.random() < 0.3 else 0)]
    return post


def rfi(w: World, ctx: dict[str, Any]) -> Draft:
    number = ctx["id"] % 10000
    status = w.pick(("open", "closed", "draft"))
    manager = w.person()
    payload = {
        "number": str(number), "full_number": f"RFI-{number}", "subject": w.words(5),
        "status": status, "due_date": day(ctx["created"] + 7 * 86400),
        "initiated_at": None, "closed_at": None, "private": False, "reference": None,
        "assignee": w.person(), "assignees": [w.person()], "rfi_manager": manager,
        "ball_in_court": manager, "ball_in_courts": [manager], "received_from": w.person(),
        "responsible_contractor": w.vendor(),
        "cost_impact": {"status": w.pick(("yes_known", "no_impact", "tbd")), "value": None},
        "schedule_impact": {"status": "tbd", "value": None}, "location": None,
        "specification_section": None, "created_by": w.person(), "deleted_at": None}
    questions = []
    for q in range(w.rng.randint(1, 2)):
        question = _post(w, w.words(12), ctx["created"], None, f"RFI {number} question {q}")
        question["answers"] = [_post(w, w.words(10), ctx["created"] + 3600, a == 0, f"RFI {number} reply {a}")
                               for a in range(w.rng.randint(0, 2))]
        questions.append(question)
    extra = {"questions": questions, "distribution_list": [w.person() for _ in range(2)]}
    return Draft(payload, extra)


def change_event(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"number": ctx["id"] % 1000, "alphanumeric_number": str(ctx["id"] % 1000),
                  "title": w.words(4), "description": w.words(9),
                  "status": w.pick(("open", "closed", "pending")), "event_scope": "in_scope",
                  "event_type": w.pick(("Owner Change", "Allowance", "Contingency")),
                  "change_reason": w.pick(("Design Development", "Client Request")),
                  "origin_id": None, "created_by": w.person(), "deleted_at": None})


def change_order_package(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"number": str(ctx["id"] % 1000), "title": w.words(3), "description": w.words(6),
                  "status": w.pick(("draft", "pending", "approved")), "executed": False,
                  "contract_id": ctx["project_id"] * 10, "due_date": None,
                  "grand_total": f"{w.rng.randint(1000, 900000)}.00", "deleted_at": None})


def potential_change_order(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"number": str(ctx["id"] % 1000), "title": w.words(3), "description": w.words(6),
                  "status": w.pick(("draft", "pending", "approved")),
                  "change_order_package_id": ctx.get("package_id"), "contract_id": ctx["project_id"] * 10,
                  "grand_total": f"{w.rng.randint(100, 90000)}.00", "deleted_at": None})


def prime_change_order(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"number": str(ctx["id"] % 1000), "title": w.words(3),
                  "status": w.pick(("draft", "approved")), "executed": w.rng.random() < 0.5,
                  "due_date": None, "grand_total": f"{w.rng.randint(1000, 900000)}.00",
                  "contract_id": ctx["project_id"] * 10})


def meeting(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"title": f"{w.pick(('OAC', 'Safety', 'Coordination'))} meeting {ctx['id'] % 1000}",
                  "meeting_date": day(ctx["created"]), "start_time": "09:00", "finish_time": "10:00",
                  "location": w.words(2), "description": w.words(8), "position": ctx["id"] % 1000,
                  "is_private": False, "is_draft": False, "conclusion": None,
                  "meeting_category": {"id": 1, "title": "General"}, "created_by": w.person(),
                  "deleted_at": None})


def drawing_area(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"name": f"{w.words(1)} area {ctx['id'] % 100}", "project_id": ctx["project_id"]})


def drawing(w: World, ctx: dict[str, Any]) -> Draft:
    discipline = w.pick(DISCIPLINES)
    return Draft({"number": f"{discipline[0]}-{ctx['id'] % 1000:03d}", "title": w.words(3),
                  "discipline": discipline,
                  "drawing_area_id": ctx["area_id"], "current_revision": None, "obsolete": False},
                 parent_id=ctx["area_id"])


def drawing_set(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"name": f"{w.pick(('IFC', 'Bid', 'Permit'))} set {ctx['id'] % 100}",
                  "date": day(ctx["created"])})


def drawing_revision(w: World, ctx: dict[str, Any]) -> Draft:
    dwg = ctx["drawing"]
    revision = ctx.get("revision", 0)
    made = w.new_file("pdf", f"Drawing {dwg['number']} rev {revision}")
    return Draft({"drawing_id": dwg["id"], "drawing_area_id": dwg["drawing_area_id"],
                  "drawing_set_id": ctx.get("set_id"), "number": dwg["number"], "title": dwg["title"],
                  "revision_number": str(revision), "current": True, "discipline": dwg["discipline"],
                  "drawing_date": day(ctx["created"]), "received_date": day(ctx["created"]),
                  "pdf_url": made["url"], "file_size": made["size"]})


def image_category(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"name": f"{w.words(1)} photos {ctx['id'] % 100}", "private": False})


def image(w: World, ctx: dict[str, Any]) -> Draft:
    title = f"IMG_{ctx['id'] % 100000:05d}"
    main = w.new_file("jpeg", title)
    thumb = w.new_file("png", f"{title}_thumb", scale=0.05)
    return Draft({"image_category_id": ctx.get("category_id"), "description": w.words(4),
                  "filename": main["name"], "url": main["url"], "thumbnail_url": thumb["url"],
                  "size": main["size"], "width": 4032, "height": 3024, "taken_at": None,
                  "uploaded_by": w.person(), "location": None, "private": False})


def version(w: World, title: str, number: int, created: int) -> dict[str, Any]:
    made = w.new_file("pdf", f"{title} v{number}")
    return {"id": w.next_id("file_version", 23_000_000), "number": number, "url": made["url"],
            "size": made["size"], "file_id": made["file_id"], "created_at": iso(created),
            "notes": None}


def document(w: World, ctx: dict[str, Any]) -> Draft:
    folder = ctx.get("folder", False)
    name = w.words(2) if folder else f"{w.words(3)}.pdf"
    payload: dict[str, Any] = {
        "name": name, "document_type": "folder" if folder else "file", "parent_id": ctx["parent_id"],
        "name_with_path": f"{ctx['parent_path']}/{name}", "is_deleted": False,
        "is_in_recycle_bin": False, "private": False, "is_tracked": False,
        "file_type": None if folder else "pdf"}
    extra: dict[str, Any] = {"file_versions": []}
    if not folder:
        current = version(w, name, 1, ctx["created"])
        payload["file"] = {"id": ctx["id"], "name": name, "size": current["size"],
                           "current_version": current}
        extra["file_versions"].append(current)
    return Draft(payload, extra, parent_id=ctx["parent_id"])


def daily_log_header(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"log_date": ctx["day"], "notes": w.words(6), "created_by": w.person()}, day=ctx["day"])


def manpower_log(w: World, ctx: dict[str, Any]) -> Draft:
    workers, hours = w.rng.randint(1, 30), w.pick((4, 8, 10))
    return Draft({"date": ctx["day"], "datetime": f"{ctx['day']}T12:00:00Z", "num_workers": workers,
                  "num_hours": str(hours), "man_hours": str(workers * hours), "notes": w.words(4),
                  "vendor": w.vendor(), "location": None, "cost_code": None, "created_by": w.person()},
                 day=ctx["day"])


def notes_log(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"date": ctx["day"], "datetime": f"{ctx['day']}T12:00:00Z", "comment": w.words(9),
                  "is_issue": w.rng.random() < 0.2, "location": None, "created_by": w.person()},
                 day=ctx["day"])


def weather_log(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"date": ctx["day"], "time_observed": "08:00", "temperature": str(w.rng.randint(-5, 38)),
                  "sky": w.pick(("Clear", "Overcast", "Rain")), "wind": "Calm",
                  "precipitation": "None", "ground": "Dry", "delay": False, "comments": w.words(3)},
                 day=ctx["day"])


def delivery_log(w: World, ctx: dict[str, Any]) -> Draft:
    return Draft({"date": ctx["day"], "time": "10:30", "vendor": w.vendor(),
                  "tracking_number": f"TRK{w.rng.randint(100000, 999999)}", "contents": w.words(3),
                  "comments": w.words(4), "created_by": w.person()}, day=ctx["day"])


def task(w: World, ctx: dict[str, Any]) -> Draft:
    start = ctx["created"] + w.rng.randint(0, 60) * 86400
    return Draft({"name": w.words(3), "task_number": str(ctx["id"] % 10000),
                  "start_date": day(start), "finish_date": day(start + w.rng.randint(1, 30) * 86400),
                  "percentage": w.pick((0, 25, 50, 100)), "status": "active",
                  "parent_id": ctx.get("parent_task_id"), "resource_ids": []})


BUILDERS: dict[str, Builder] = {
    "project": project, "vendor": vendor, "company_user": company_user, "project_user": project_user,
    "spec_section": spec_section, "spec_section_revision": spec_section_revision,
    "submittal": submittal, "rfi": rfi, "change_event": change_event,
    "change_order_package": change_order_package, "potential_change_order": potential_change_order,
    "prime_change_order": prime_change_order, "meeting": meeting, "drawing_area": drawing_area,
    "drawing": drawing, "drawing_set": drawing_set, "drawing_revision": drawing_revision,
    "image_category": image_category, "image": image, "document": document,
    "daily_log_header": daily_log_header, "manpower_log": manpower_log, "notes_log": notes_log,
    "weather_log": weather_log, "delivery_log": delivery_log, "task": task,
}

# Fields an "update" mutation may change, per kind (the first one that exists is changed).
UPDATABLE = {
    "project": "name", "vendor": "business_phone", "company_user": "job_title", "project_user": "job_title",
    "spec_section": "description", "spec_section_revision": "description", "submittal": "title",
    "rfi": "subject", "change_event": "title", "change_order_package": "title",
    "potential_change_order": "title", "prime_change_order": "title", "meeting": "description",
    "drawing_area": "name", "drawing": "title", "drawing_set": "name", "drawing_revision": "title",
    "image_category": "name", "image": "description", "document": "name", "daily_log_header": "notes",
    "manpower_log": "notes", "notes_log": "comment", "weather_log": "comments", "delivery_log": "comments",
    "task": "name",
}
