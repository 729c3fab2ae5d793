"""The seeded generator: every kind, realistic relations, ties, big ids, determinism."""

from __future__ import annotations

import itertools
import random
from collections import Counter

from eva00.kinds import KIND_TABLE
from eva00.simulator.blobs import BlobRegistry
from eva00.simulator.generator import generate
from eva00.simulator.records import World
from eva00.simulator.store import Store

ANCHOR = 1_767_225_600  # 2026-01-01


def build(seed: int = 1, projects: int = 3, items: int = 1000) -> Store:
    blobs = BlobRegistry()
    store = Store(1000, blobs)
    world = World(random.Random(seed), "http://api.test", blobs, 4096, 1000)
    generate(store, world, projects, items, ANCHOR, now=ANCHOR + 3600)
    return store


def test_every_kind_is_generated_near_the_asked_item_count() -> None:
    store = build()
    kinds = Counter(r.kind for r in store.all_records())
    assert set(kinds) == set(KIND_TABLE) and 900 <= sum(kinds.values()) <= 1100


def test_the_same_seed_gives_the_same_records() -> None:
    first, second = build(seed=5), build(seed=5)
    assert [(r.kind, r.id, r.payload) for r in first.all_records()] == [
        (r.kind, r.id, r.payload) for r in second.all_records()
    ]
    assert [r.payload for r in build(seed=6).all_records()] != [r.payload for r in first.all_records()]


def test_relations_point_at_existing_records() -> None:
    store = build()
    for record in store.all_records():
        if record.kind == "drawing":
            assert store.get("drawing_area", record.payload["drawing_area_id"]) is not None
        if record.kind == "drawing_revision":
            drawing = store.get("drawing", record.payload["drawing_id"])
            assert drawing is not None and drawing.project_id == record.project_id
        if record.kind == "project_user":
            assert store.get("company_user", record.id) is not None


def test_every_drawing_has_exactly_one_current_revision() -> None:
    store = build()
    current = Counter(
        r.payload["drawing_id"]
        for r in store.all_records()
        if r.kind == "drawing_revision" and r.payload["current"]
    )
    drawings = [r for r in store.all_records() if r.kind == "drawing"]
    assert all(current[d.id] == 1 for d in drawings)
    assert all(d.payload["current_revision"]["id"] for d in drawings)


def test_buckets_hold_runs_of_records_updated_in_the_same_second() -> None:
    store = build(items=3000)
    rfis = store.bucket("rfi", store.projects()[0].id)
    longest = run = 1
    for before, after in itertools.pairwise(rfis):
        run = run + 1 if before.updated_epoch == after.updated_epoch else 1
        longest = max(longest, run)
    assert longest >= 5


def test_some_ids_exceed_32_bits_and_timestamps_are_whole_seconds_before_the_anchor() -> None:
    store = build()
    assert any(r.id > 2**32 for r in store.all_records())
    assert all(
        r.updated_epoch <= ANCHOR + 3600 and r.payload["updated_at"].endswith("Z")
        for r in store.all_records()
    )
