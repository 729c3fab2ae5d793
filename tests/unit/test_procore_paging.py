"""Paging rules: our own query for every page, short page or Total ends it, v2 unwrapped."""

from __future__ import annotations

import pytest

from eva00.errors import Retryable, Unreadable
from eva00.procore.endpoints import EndpointSpec, Envelope, Scope, endpoint_for
from eva00.procore.errors import UnexpectedShape
from eva00.procore.paging import Window, normalise_ids, page_params, parse_page

RFI = endpoint_for("rfi")
V2 = EndpointSpec("thing", "/rest/v2.0/companies/{company_id}/things", Scope.COMPANY,
                  envelope=Envelope.DATA, max_per_page=100)


def test_each_page_carries_the_filters_of_our_own_query() -> None:
    window = Window("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z")
    first = page_params(RFI, {"x": "1"}, page=1, per_page=50, window=window)
    third = page_params(RFI, {"x": "1"}, page=3, per_page=50, window=window)
    assert first == {"x": "1", "filters[updated_at]": "2024-01-01T00:00:00Z...2024-01-02T00:00:00Z",
                     "page": "1", "per_page": "50"}
    assert third == {**first, "page": "3"}


def test_per_page_never_exceeds_the_endpoints_maximum() -> None:
    assert page_params(endpoint_for("project"), {}, page=1, per_page=5000)["per_page"] == "300"
    assert page_params(V2, {}, page=1)["per_page"] == "100"


def test_daily_logs_get_a_date_window_and_unpaged_lists_no_paging() -> None:
    window = Window("2024-01-01T00:00:00Z", "2024-01-31T23:59:59Z")
    params = page_params(endpoint_for("manpower_log"), {}, page=1, window=window)
    assert (params["start_date"], params["end_date"]) == ("2024-01-01", "2024-01-31")
    assert "page" not in page_params(endpoint_for("prime_change_order"), {}, page=1)
    with pytest.raises(ValueError, match="no updated_at"):
        page_params(endpoint_for("meeting"), {}, page=1, window=window)


def test_a_short_page_is_the_last_one() -> None:
    page = parse_page(RFI, [{"id": 1}], {"Total": "101", "Per-Page": "50"}, page=3, per_page=50,
                      seen_before=100)
    assert page.is_last and page.total == 101


def test_a_full_page_reaching_total_is_the_last_without_asking_for_an_empty_one() -> None:
    items = [{"id": i} for i in range(50)]
    assert parse_page(RFI, items, {"Total": "100"}, page=2, per_page=50, seen_before=50).is_last
    assert not parse_page(RFI, items, {"Total": "101"}, page=2, per_page=50, seen_before=50).is_last


def test_a_link_header_without_next_ends_the_enumeration() -> None:
    items = [{"id": i} for i in range(2)]
    last = '<https://x/rfis?page=1>; rel="first", <https://x/rfis?page=1>; rel="prev"'
    assert parse_page(RFI, items, {"Link": last}, page=2, per_page=2, seen_before=2).is_last
    more = last + ', <https://x/rfis?page=3>; rel="next"'
    assert not parse_page(RFI, items, {"Link": more}, page=2, per_page=2, seen_before=2).is_last


def test_an_empty_first_page_is_last_but_says_nothing_about_deletions() -> None:
    page = parse_page(RFI, [], {"Total": "0"}, page=1, per_page=50, seen_before=0)
    assert page.is_last and page.items == [] and page.total == 0


def test_v2_envelopes_are_unwrapped_and_string_ids_become_ints() -> None:
    body = {"data": [{"id": "12345678901", "project_id": "7", "name": "A", "code": "0012",
                      "assignee": {"id": "5", "login": "x"}, "refs": [{"item_id": "9"}]}]}
    page = parse_page(V2, body, {}, page=1, per_page=10, seen_before=0)
    assert page.items == [{"id": 12345678901, "project_id": 7, "name": "A", "code": "0012",
                           "assignee": {"id": 5, "login": "x"}, "refs": [{"item_id": 9}]}]


def test_a_body_of_an_unknown_shape_is_unreadable_not_retryable() -> None:
    with pytest.raises(UnexpectedShape) as caught:
        parse_page(RFI, {"error": "x"}, {}, page=1, per_page=10, seen_before=0)
    assert isinstance(caught.value, Unreadable) and not isinstance(caught.value, Retryable)
    assert caught.value.sample == '{"error":"x"}' and "/rfis" in caught.value.endpoint


def test_an_id_that_is_not_a_number_is_kept_as_it_is() -> None:
    assert normalise_ids({"id": "x1"}) == {"id": "x1"}
