"""The seeded data set: `--projects 20 --items 5000` is the standard one, scaling to 100,000+.

Kinds are made in dependency order, each record's parents drawn from the records already made
(the mutation engine creates records through the same `make`). Timestamps are whole seconds in
the year before the anchor day, and each larger bucket gets a run of consecutive records updated
in one second (up to 150 of them, so a tie straddles a 100-item page boundary). Daily logs cover
the days up to and including today, so a list without dates (today only) is not empty.
"""

from __future__ import annotations

import random
import time
from typing import Any

from eva00.simulator.clock import day, iso
from eva00.simulator.records import BUILDERS, ID_BASE, World, person_ref
from eva00.simulator.store import Record, Store

# Share of a project's items per kind (sums to 1).
WEIGHTS = {
    "project_user": .03, "spec_section": .04, "spec_section_revision": .04, "submittal": .09,
    "rfi": .09, "change_event": .04, "change_order_package": .02, "potential_change_order": .04,
    "prime_change_order": .01, "meeting": .03, "drawing_area": .01, "drawing": .07, "drawing_set": .01,
    "drawing_revision": .09, "image_category": .01, "image": .10, "document": .07,
    "daily_log_header": .04, "manpower_log": .04, "notes_log": .03, "weather_log": .02,
    "delivery_log": .02, "task": .06,
}
DAILY_KINDS = ("daily_log_header", "manpower_log", "notes_log", "weather_log", "delivery_log")
YEAR_S = 365 * 86400
TIE_RUN_MAX = 150


def context_for(store: Store, world: World, kind: str, project_id: int | None,
                created: int, parent: Record | None = None) -> dict[str, Any] | None:
    """Parents and settings a new record of this kind needs; None when a parent is missing."""
    rng = world.rng
    ctx: dict[str, Any] = {"project_id": project_id, "created": created}

    def pick(parent_kind: str) -> Record | None:
        found = store.live(parent_kind, project_id)
        return rng.choice(found) if found else None

    if kind == "project":
        ctx["number"] = len(store.projects()) + 1
    elif kind == "project_user":
        present = {r.id for r in store.bucket("project_user", project_id)}
        users = [u for u in store.live("company_user", None) if u.id not in present]
        if not users:
            return None
        ctx["user"] = rng.choice(users).payload
        ctx["id"] = ctx["user"]["id"]
    elif kind in ("spec_section_revision", "submittal"):
        section = pick("spec_section")
        if section is None and kind == "spec_section_revision":
            return None
        ctx["section"] = section and {k: section.payload[k] for k in ("id", "number", "description")}
        ctx["division_id"] = section and section.payload["specification_section_division_id"]
        ctx["revision"] = rng.randint(0, 3)
        project = store.project(project_id or 0)
        ctx["project_name"] = project.payload["name"] if project else ""
    elif kind == "drawing":
        area = pick("drawing_area")
        if area is None:
            return None
        ctx["area_id"] = area.id
    elif kind == "drawing_revision":
        drawing = parent or pick("drawing")
        if drawing is None:
            return None
        ctx["drawing"] = drawing.payload
        ctx["revision"] = sum(1 for r in store.bucket("drawing_revision", project_id)
                              if r.parent_id == drawing.id)
        drawing_set = pick("drawing_set")
        ctx["set_id"] = drawing_set.id if drawing_set else None
    elif kind == "image":
        category = pick("image_category")
        ctx["category_id"] = category.id if category and rng.random() < 0.9 else None
    elif kind == "document":
        folders = [r for r in store.live("document", project_id) if r.payload["document_type"] == "folder"]
        parent = rng.choice(folders) if folders and rng.random() < 0.7 else None
        ctx["folder"] = rng.random() < 0.2
        ctx["parent_id"] = parent.id if parent else root_folder_id(project_id or 0)
        ctx["parent_path"] = parent.payload["name_with_path"] if parent else ""
    elif kind == "potential_change_order":
        package = pick("change_order_package")
        ctx["package_id"] = package.id if package else None
    elif kind == "task":
        parent_task = pick("task")
        ctx["parent_task_id"] = parent_task.id if parent_task and rng.random() < 0.3 else None
    elif kind in DAILY_KINDS:
        ctx["day"] = day(created)
    return ctx


def root_folder_id(project_id: int) -> int:
    return 9_900_000_000 + project_id


def make(store: Store, world: World, kind: str, project_id: int | None, created: int,
         updated: int | None = None, parent: Record | None = None) -> Record | None:
    """Build one record through its kind's builder, link it to its parents and store it."""
    ctx = context_for(store, world, kind, project_id, created, parent)
    if ctx is None:
        return None
    record_id = ctx.get("id") or world.next_id(kind, ID_BASE[kind])
    ctx["id"] = record_id
    draft = BUILDERS[kind](world, ctx)
    stamp = created if updated is None else updated
    payload = {"id": record_id, **draft.payload, "created_at": iso(created), "updated_at": iso(stamp)}
    parent_id = ctx["drawing"]["id"] if kind == "drawing_revision" else draft.parent_id
    record = Record(kind, record_id, project_id, payload, draft.show_extra, parent_id, draft.day,
                    created, stamp)
    _link(store, record, ctx)
    store.add(record)
    return record


def _link(store: Store, record: Record, ctx: dict[str, Any]) -> None:
    """Parents that show their newest child: a drawing its current revision, a spec section its
    current revision, a company user's people reference list."""
    if record.kind == "drawing_revision":
        drawing = store.get("drawing", ctx["drawing"]["id"])
        if drawing is not None:
            for older in store.bucket("drawing_revision", record.project_id):
                if older.parent_id == drawing.id and older.payload.get("current"):
                    older.payload["current"] = False
                    store.changed(older)
            drawing.payload["current_revision"] = {"id": record.id,
                                                   "revision_number": record.payload["revision_number"],
                                                   "drawing_date": record.payload["drawing_date"]}
            store.changed(drawing)
    elif record.kind == "spec_section_revision":
        section = store.get("spec_section", ctx["section"]["id"])
        if section is not None:
            section.payload["current_revision_id"] = record.id
            store.changed(section)


def generate(store: Store, world: World, projects: int, items: int, anchor: int,
             now: float | None = None) -> None:
    """Fill an empty store: company records, then each project's records, then the tie runs."""
    gen_now = int(time.time() if now is None else now)
    rng = world.rng

    def stamps() -> tuple[int, int]:
        created = anchor - rng.randint(2 * 86400, YEAR_S)
        return created, min(created + rng.randint(0, 30 * 86400), anchor - 86400, gen_now)

    company_count = max(5, items // 100), max(10, items // 50)
    for _ in range(company_count[0]):
        make(store, world, "vendor", None, *stamps())
        world.vendors.append(store.bucket("vendor", None)[-1].payload)
    for _ in range(company_count[1]):
        user = make(store, world, "company_user", None, *stamps())
        if user is not None:
            world.people.append(person_ref(user.payload))
    per_project = max(len(WEIGHTS), (items - sum(company_count) - projects) // max(1, projects))
    for _ in range(projects):
        project = make(store, world, "project", None, *stamps())
        assert project is not None
        _fill_project(store, world, project.id, per_project, anchor, gen_now, stamps)
    for (kind, _scope), bucket in list(store._buckets.items()):
        if kind not in DAILY_KINDS:
            _tie_run(store, rng, bucket)


def _fill_project(store: Store, world: World, project_id: int, items: int, anchor: int, gen_now: int,
                  stamps: Any) -> None:
    counts = {kind: max(1, round(weight * items)) for kind, weight in WEIGHTS.items()}
    counts["drawing_revision"] = max(counts["drawing_revision"], counts["drawing"])
    days = counts["daily_log_header"]
    for kind, count in counts.items():
        for index in range(count):
            if kind in DAILY_KINDS:
                offset = index if kind == "daily_log_header" else world.rng.randrange(days)
                created = min(anchor - offset * 86400 + world.rng.randint(0, 3600), gen_now)
                make(store, world, kind, project_id, created, created)
            elif kind == "drawing_revision" and index < counts["drawing"]:
                _first_revision(store, world, project_id, index, stamps)
            else:
                make(store, world, kind, project_id, *stamps())


def _first_revision(store: Store, world: World, project_id: int, index: int, stamps: Any) -> None:
    """Every drawing gets a revision 0 before any drawing gets a second one."""
    drawing = store.live("drawing", project_id)[index]
    created, updated = stamps()
    make(store, world, "drawing_revision", project_id, created, updated, parent=drawing)


def _tie_run(store: Store, rng: random.Random, bucket: list[Record]) -> None:
    if len(bucket) < 20:
        return
    length = min(TIE_RUN_MAX, max(5, len(bucket) // 3))
    start = rng.randrange(0, len(bucket) - length + 1)
    run = bucket[start:start + length]
    second = max(r.created_epoch for r in run)
    for record in run:
        record.touch(second)
        store.changed(record)
