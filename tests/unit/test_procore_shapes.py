"""Every top-level form the published API declares is read into records; any other is unreadable."""

from __future__ import annotations

import pytest

from eva00.procore.errors import UnexpectedShape
from eva00.procore.shapes import SAMPLE_CHARS, list_records, show_record

MEETING_A = {"id": 1, "title": "OAC 1"}
MEETING_B = {"id": 2, "title": "Safety 2"}


@pytest.mark.parametrize(("body", "expected"), [
    ([MEETING_A, MEETING_B], [MEETING_A, MEETING_B]),  # a bare array
    ({"data": [MEETING_A]}, [MEETING_A]),  # the v2 envelope
    ([{"group_title": "OAC", "meetings": [MEETING_A]}, {"group_title": "Safety", "meetings": [MEETING_B]}],
     [MEETING_A, MEETING_B]),  # grouped (meetings v1.0, v1.1's first alternative)
    ({"meetings": [MEETING_B]}, [MEETING_B]),  # the ungrouped wrapper (deleted_only)
    ({"id": 5, "title": "PCO 5"}, [{"id": 5, "title": "PCO 5"}]),  # a list declared as one object
    ([], []),
    ([{"group_title": "empty", "meetings": []}], []),
], ids=["array", "v2", "grouped", "wrapper", "one-object", "empty", "empty-group"])
def test_each_declared_list_form_is_read_into_its_records(body: object, expected: list[object]) -> None:
    assert list_records(body, endpoint="GET /x") == expected


@pytest.mark.parametrize("body", [
    {"results": [MEETING_A]}, [7, 8], [{"title": "no id"}], "text", None, [{"id": True}],
    [{"group_title": "x", "items": [MEETING_A]}],
], ids=["unknown-wrapper", "bare-numbers", "no-id", "string", "null", "bool-id", "unknown-group"])
def test_any_other_form_is_unreadable_with_the_endpoint_and_a_short_sample(body: object) -> None:
    with pytest.raises(UnexpectedShape) as caught:
        list_records(body, endpoint="GET /rest/v1.1/projects/{project_id}/meetings")
    endpoint = "GET /rest/v1.1/projects/{project_id}/meetings"
    assert caught.value.endpoint == endpoint
    assert str(caught.value).startswith(f"unreadable answer from {endpoint}")
    assert caught.value.sample


def test_a_sample_is_short_whatever_the_size_of_the_answer() -> None:
    with pytest.raises(UnexpectedShape) as caught:
        list_records({"results": [MEETING_A] * 10_000}, endpoint="GET /x")
    assert len(caught.value.sample) <= SAMPLE_CHARS + 3


def test_a_show_answer_is_one_record_bare_or_in_a_v2_envelope() -> None:
    assert show_record({"id": 3}, endpoint="GET /x/{id}") == {"id": 3}
    assert show_record({"data": {"id": "3"}}, endpoint="GET /x/{id}") == {"id": "3"}
    with pytest.raises(UnexpectedShape):
        show_record([{"id": 3}], endpoint="GET /x/{id}")
