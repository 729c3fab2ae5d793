"""The mutation engine: creates, updates, deletes and restores records, revises drawings and adds
file versions, each change stamped with the current second and announced to the webhooks.

Driven by POST /_sim/mutate and by the churn thread. A change to a record replaces its payload in
place under the store lock, so a client paging meanwhile sees pages shift as on Procore.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eva00.simulator.catalogue import COMPANY_LEVEL_KINDS, KINDS
from eva00.simulator.clock import iso
from eva00.simulator.generator import make
from eva00.simulator.records import UPDATABLE, World, person_ref, version
from eva00.simulator.store import Record, Store

ACTIONS = ("create", "update", "delete", "restore", "revise_drawing", "new_file_version", "obsolete_drawing")


class MutationError(ValueError):
    pass


@dataclass(frozen=True)
class Change:
    action: str
    event_type: str  # create | update | delete
    kind: str
    id: int
    project_id: int | None
    epoch: int

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "event_type": self.event_type, "kind": self.kind, "id": self.id,
                "project_id": self.project_id, "updated_at": iso(self.epoch)}


class Mutator:
    def __init__(self, store: Store, world: World, announce: Callable[[list[Change]], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.world = world
        self.announce = announce
        self.clock = clock

    def apply(self, spec: dict[str, Any]) -> list[Change]:
        action = spec.get("action")
        if action not in ACTIONS:
            raise MutationError(f"action must be one of {list(ACTIONS)}")
        implied = {"revise_drawing": "drawing", "new_file_version": "document", "obsolete_drawing": "drawing"}
        kind = implied.get(str(action), spec.get("kind"))
        if kind not in KINDS:
            raise MutationError(f"kind must be one of {sorted(KINDS)}")
        try:
            count = int(spec.get("count", 1))
            project_id = None if spec.get("project_id") is None else int(spec["project_id"])
            record_id = None if spec.get("id") is None else int(spec["id"])
        except (TypeError, ValueError):
            raise MutationError("count, project_id and id must be integers") from None
        changes: list[Change] = []
        epoch = int(self.clock())
        with self.store.lock:
            for _ in range(max(0, count)):
                now = epoch if spec.get("same_second", True) else int(self.clock())
                changes += self._one(str(action), str(kind), project_id, record_id, now)
                if record_id is not None:
                    break
        self.announce(changes)
        return changes

    def _one(self, action: str, kind: str, project_id: int | None, record_id: int | None,
             now: int) -> list[Change]:
        if action == "create":
            return self._create(kind, project_id, now)
        target = self._target(kind, project_id, record_id, deleted=action == "restore")
        if action == "update":
            field_name = UPDATABLE[kind]
            target.payload[field_name] = f"{self.world.words(3)} ({now})"
            return [self._touch(target, now, "update")]
        if action == "delete":
            target.deleted_epoch = now
            self.store.changed(target)
            return [Change("delete", "delete", kind, target.id, target.project_id, now),
                    *self._cascade(target, now, deleting=True)]
        if action == "restore":
            children = self._cascade(target, now, deleting=False)
            target.deleted_epoch = None
            return [self._touch(target, now, "restore", "create"), *children]
        if action == "revise_drawing":
            revision = make(self.store, self.world, "drawing_revision", target.project_id, now, now,
                            parent=target)
            assert revision is not None
            return [Change("create", "create", "drawing_revision", revision.id, target.project_id, now),
                    self._touch(target, now, "revise_drawing")]
        if action == "obsolete_drawing":
            # Its revisions stay as they are; the revisions list hides them unless with_obsolete=true.
            target.payload["obsolete"] = True
            return [self._touch(target, now, "obsolete_drawing")]
        return [self._new_version(target, now)]

    def _cascade(self, parent: Record, now: int, *, deleting: bool) -> list[Change]:
        """A drawing area's drawings go to the recycle bin with it (its drawings list answers 404
        from then on) and come back with it: those deleted in the same moment as the area."""
        if parent.kind != "drawing_area":
            return []
        changes = []
        for child in list(self.store.bucket("drawing", parent.project_id)):
            if child.parent_id != parent.id:
                continue
            if deleting and child.deleted_epoch is None:
                child.deleted_epoch = now
                self.store.changed(child)
                changes.append(Change("delete", "delete", "drawing", child.id, child.project_id, now))
            elif not deleting and child.deleted_epoch is not None \
                    and child.deleted_epoch == parent.deleted_epoch:
                child.deleted_epoch = None
                changes.append(self._touch(child, now, "restore", "create"))
        return changes

    def _create(self, kind: str, project_id: int | None, now: int) -> list[Change]:
        scope = None if kind in COMPANY_LEVEL_KINDS else (project_id or self._any_project())
        record = make(self.store, self.world, kind, scope, now, now)
        if record is None:
            raise MutationError(f"cannot create a {kind} there: a parent record is missing")
        if kind == "company_user":
            self.world.people.append(person_ref(record.payload))
        return [Change("create", "create", kind, record.id, record.project_id, now)]

    def _touch(self, record: Record, epoch: int, action: str, event: str = "update") -> Change:
        record.touch(epoch)
        self.store.changed(record)
        return Change(action, event, record.kind, record.id, record.project_id, epoch)

    def _new_version(self, record: Record, now: int) -> Change:
        file_part = record.payload.get("file")
        if not isinstance(file_part, dict):
            raise MutationError(f"document {record.id} is a folder, it has no file versions")
        versions = (record.show_extra or {}).setdefault("file_versions", [])
        made = version(self.world, record.payload["name"], len(versions) + 1, now)
        versions.append(made)
        record.payload["file"] = {**file_part, "size": made["size"], "current_version": made}
        return self._touch(record, now, "new_file_version")

    def _any_project(self) -> int:
        choices = [p.id for p in self.store.live("project", None) if p.id not in self.store.forbidden]
        if not choices:
            raise MutationError("no live project to change")
        return int(self.world.rng.choice(choices))

    def _target(self, kind: str, project_id: int | None, record_id: int | None, *, deleted: bool) -> Record:
        if record_id is not None:
            found = self.store.get(kind, record_id, project_id)
            if found is None or found.is_deleted != deleted:
                raise MutationError(f"no {'deleted' if deleted else 'live'} {kind} {record_id}")
            return found
        scopes = [None] if kind in COMPANY_LEVEL_KINDS else (
            [project_id] if project_id is not None else [p.id for p in self.store.projects()])
        pool = [r for scope in scopes for r in self.store.bucket(kind, scope) if r.is_deleted == deleted]
        if kind == "document" and not deleted:
            files = [r for r in pool if isinstance(r.payload.get("file"), dict)]
            pool = files or pool
        if not pool:
            raise MutationError(f"no {'deleted' if deleted else 'live'} {kind} to change")
        return self.world.rng.choice(pool)
