"""Strict parsing of Procore's webhook payload formats v2.0, v3.0 and v4.0."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eva00.webhooks.events import InvalidPayload, MalformedJson, parse, parse_body


def v2(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": 123456789, "ulid": "01JMYXMZRBVKK0PC6XS8SA4QRE",
        "timestamp": "2025-02-06T23:34:12.246562Z",
        "metadata": {"source_user_id": 987, "source_project_id": 2468, "source_operation_id": None,
                     "source_company_id": 1357, "source_application_id": None},
        "user_id": 987, "company_id": 1357, "project_id": 2468, "api_version": "v2.0",
        "event_type": "update", "resource_name": "RFIs", "resource_id": 54321,
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not ...}


def v4(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": "01JMYXMZRBVKK0PC6XS8SA4QRF", "timestamp": "2025-02-25T16:04:43.619085Z",
        "reason": "update", "company_id": "8", "project_id": "6778", "user_id": "5447",
        "resource_type": "RFIs", "resource_id": "379913",
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not ...}


def test_a_v2_payload_becomes_an_event_keyed_on_its_ulid() -> None:
    event = parse_body(orjson.dumps(v2()))
    assert (event.event_key, event.api_version, event.company_id, event.project_id) == (
        "01JMYXMZRBVKK0PC6XS8SA4QRE", "v2.0", 1357, 2468)
    assert (event.resource_name, event.resource_id, event.event_type) == ("RFIs", 54321, "update")
    assert not event.is_delete


def test_a_v2_payload_without_ulid_is_keyed_on_its_numeric_id() -> None:
    assert parse(v2(ulid=...)).event_key == "id:123456789"


def test_a_v3_payload_keeps_its_related_resources() -> None:
    event = parse(v2(api_version="v3.0", resource_name="RFI Replies", resource_id=77,
                     related_resources=[{"id": 54321, "name": "RFIs"}]))
    assert event.api_version == "v3.0"
    assert event.related == (("RFIs", 54321),)


def test_a_v4_payload_with_string_ids_becomes_the_same_kind_of_event() -> None:
    event = parse(v4(reason="delete"))
    assert (event.event_key, event.api_version, event.company_id, event.project_id) == (
        "01JMYXMZRBVKK0PC6XS8SA4QRF", "v4.0", 8, 6778)
    assert (event.resource_name, event.resource_id, event.event_type) == ("RFIs", 379913, "delete")
    assert event.is_delete


def test_company_level_events_carry_no_project() -> None:
    assert parse(v2(resource_name="Company Vendors", project_id=None)).project_id is None
    assert parse(v4(resource_type="Company Users", project_id=...)).project_id is None


def test_a_v4_resource_we_do_not_replicate_may_have_a_non_numeric_id() -> None:
    event = parse(v4(resource_type="Coordination Issues", resource_id="a1b2-c3"))
    assert event.resource_id is None


def test_v4_reasons_beyond_create_update_delete_are_kept() -> None:
    assert parse(v4(reason="restore")).event_type == "restore"


def test_a_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedJson):
        parse_body(b'{"id": 1, "ulid": ')


@pytest.mark.parametrize(
    "document",
    [
        pytest.param([v2()], id="not an object"),
        pytest.param({"hello": "world"}, id="neither format"),
        pytest.param(v2(id=...), id="v2 id missing"),
        pytest.param(v2(id="123"), id="v2 id as string"),
        pytest.param(v2(company_id=True), id="v2 boolean id"),
        pytest.param(v2(resource_id=-5), id="v2 negative id"),
        pytest.param(v2(resource_id=2**63), id="v2 id past bigint"),
        pytest.param(v2(resource_id=1.5), id="v2 fractional id"),
        pytest.param(v2(project_id="2468"), id="v2 project id as string"),
        pytest.param(v2(event_type="archive"), id="v2 unknown event type"),
        pytest.param(v2(api_version="v4.0"), id="v2 shape claiming v4"),
        pytest.param(v2(api_version=...), id="v2 api_version missing"),
        pytest.param(v2(resource_name=""), id="v2 empty resource name"),
        pytest.param(v2(timestamp="yesterday"), id="v2 timestamp not ISO-8601"),
        pytest.param(v2(ulid=12), id="v2 ulid not a string"),
        pytest.param(v2(ulid="x" * 65), id="v2 ulid too long"),
        pytest.param(v2(metadata=[1]), id="v2 metadata not an object"),
        pytest.param(v2(related_resources={"id": 1}), id="v3 related not a list"),
        pytest.param(v2(related_resources=[{"id": "1", "name": "RFIs"}]), id="v3 related id string"),
        pytest.param(v4(id=...), id="v4 id missing"),
        pytest.param(v4(company_id=8), id="v4 company id as number"),
        pytest.param(v4(resource_id=379913), id="v4 resource id as number"),
        pytest.param(v4(resource_id="37a"), id="v4 known resource non-numeric id"),
        pytest.param(v4(project_id="-1"), id="v4 negative project id"),
        pytest.param(v4(reason=""), id="v4 empty reason"),
        pytest.param(v4(resource_type=None), id="v4 resource type null"),
    ],
)
def test_payloads_outside_the_formats_are_invalid(document: Any) -> None:
    with pytest.raises(InvalidPayload):
        parse(document)
