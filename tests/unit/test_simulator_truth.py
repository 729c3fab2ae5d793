"""The simulator's ground truth against the sync: two hash implementations that must agree, and a
resource catalogue that must serve every kind the sync replicates."""

from __future__ import annotations

import random
from typing import Any

import pytest

from eva00.hashing import payload_hash
from eva00.kinds import COMPANY_LEVEL_KINDS, KIND_TABLE
from eva00.simulator import catalogue
from eva00.simulator.blobs import BlobRegistry
from eva00.simulator.generator import generate
from eva00.simulator.records import BUILDERS, UPDATABLE, World
from eva00.simulator.store import Store, v2_object
from eva00.simulator.truth import truth_hash

ANCHOR = 1_767_225_600  # 2026-01-01

PAYLOADS: list[Any] = [
    {},
    [],
    None,
    {"id": 1, "title": None, "deleted_at": None},
    {"z": 1, "a": 2, "m": {"y": [3, {"b": None, "a": True}], "x": False}},
    {"subject": "Ärger mit der Fassade ✓", "notes": "日本語 \u2013 🏗️ crane", "empty": ""},
    {"escapes": "quote \" backslash \\ newline \n tab \t nul \u0000 line sep \u2028"},
    {"floats": [0.1, 0.2, 1.5, -0.0, 1e16, 1e-7, 123456789.123456789, 2.5e-308, 1.7976931348623157e308]},
    {"ints": [0, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63)]},
    {"deep": {"a": {"b": {"c": {"d": [[[{"e": "f"}]]]}}}}},
    [{"id": 2, "url": "http://api/rest/v1.0/files/2/download"}, {"url": "u", "id": 1}],
    {"questions": [{"id": 3, "answers": [{"id": 9, "attachments": [{"id": 4, "url": "x"}]}]}]},
    "a bare string",
    12.75,
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_the_simulator_hash_and_the_sync_hash_agree_on_awkward_payloads(payload: Any) -> None:
    assert truth_hash(payload) == payload_hash(payload)


def test_the_simulator_hash_and_the_sync_hash_agree_on_every_generated_record() -> None:
    blobs = BlobRegistry()
    store = Store(1000, blobs)
    generate(store, World(random.Random(3), "http://api.test", blobs, 4096, 1000), 2, 600, ANCHOR,
             now=ANCHOR + 3600)
    objects = [r.truth_object() for r in store.all_records()]
    objects += [v2_object(r.payload) for r in store.all_records() if r.kind == "task"]
    assert {type(o) for o in objects} == {dict} and len(objects) > 500
    assert [truth_hash(o) for o in objects] == [payload_hash(o) for o in objects]


def test_key_order_never_changes_the_hash_at_any_depth() -> None:
    one = {"a": 1, "b": {"c": [{"d": 1, "e": 2}], "f": None}}
    other = {"b": {"f": None, "c": [{"e": 2, "d": 1}]}, "a": 1}
    assert truth_hash(one) == truth_hash(other) == payload_hash(other)


def test_any_changed_value_changes_the_hash() -> None:
    base = {"id": 7, "title": "Level 3 slab", "amount": 1.5, "closed": False, "due": None}
    variants = [{**base, "title": "Level 3 slab "}, {**base, "amount": 1.50001}, {**base, "closed": True},
                {**base, "due": ""}, {**base, "id": "7"}, {**base, "extra": None}]
    hashes = {truth_hash(base), *(truth_hash(v) for v in variants)}
    assert len(hashes) == len(variants) + 1


def test_the_hash_is_the_documented_rule_pinned_to_one_digest() -> None:
    # Both implementations drifting the same way (another serialiser, another xxh3 width) would
    # still agree with each other; this digest of sorted-key orjson under xxh3_128 would not.
    payload = {"b": [1, 2.5, None], "a": {"z": "Ärger ✓", "y": True}}
    assert truth_hash(payload) == "2463a3f44b7c4a55c218a060f1dc5c3c"


def test_the_catalogue_serves_every_kind_the_sync_replicates() -> None:
    assert set(KIND_TABLE) <= set(catalogue.KINDS)
    assert len(catalogue.KINDS) == len(set(catalogue.KINDS))


def test_the_catalogue_and_the_sync_list_the_same_kinds_once_per_company() -> None:
    assert catalogue.COMPANY_LEVEL_KINDS == COMPANY_LEVEL_KINDS


def test_every_served_kind_has_a_builder_an_updatable_field_and_a_webhook_name() -> None:
    served = set(catalogue.KINDS)
    assert set(BUILDERS) == served and set(UPDATABLE) == served
    assert set(catalogue.RESOURCE_NAMES) == served and all(catalogue.RESOURCE_NAMES.values())
