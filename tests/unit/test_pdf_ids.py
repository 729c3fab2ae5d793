"""Synthetic ids of imported records: negative, deterministic, distinct."""

from __future__ import annotations

from eva00.pdf_import.ids import assign_ids, record_key, synthetic_id
from eva00.pdf_import.merge import matches, number_key


def test_synthetic_ids_are_negative_bigints_and_deterministic() -> None:
    first = synthetic_id("rfi|1001|RFI-012")
    assert first == synthetic_id("rfi|1001|RFI-012")
    assert -(2**63) <= first < 0


def test_the_same_number_in_another_project_or_kind_gets_another_id() -> None:
    record = {"number": "12", "full_number": "12"}
    ids = {synthetic_id(record_key(kind, project, record))
           for kind, project in (("rfi", 1), ("rfi", 2), ("submittal", 1))}
    assert len(ids) == 3


def test_submittals_numbered_per_spec_section_stay_apart() -> None:
    a = {"number": "1", "formatted_number": "03 30 00-1"}
    b = {"number": "1", "formatted_number": "05 12 00-1"}
    assert len(set(assign_ids("submittal", 1, [a, b]))) == 2


def test_drafts_are_keyed_by_subject_and_date_and_repeats_by_their_order() -> None:
    draft = {"number": None, "subject": "Roof  drain sizing", "date_initiated": "2024-02-01"}
    same = {"number": None, "subject": "roof drain sizing", "date_initiated": "2024-02-01"}
    other_day = {"number": None, "subject": "Roof drain sizing", "date_initiated": "2024-02-02"}
    ids = assign_ids("rfi", 7, [draft, same, other_day])
    assert len(set(ids)) == 3
    assert ids == assign_ids("rfi", 7, [draft, same, other_day])
    assert ids[0] == synthetic_id("rfi|7|draft|roof drain sizing|2024-02-01")


def test_numbers_match_with_or_without_leading_zeros_or_prefix() -> None:
    api = {number_key("12"), number_key("RFI-9")}
    assert matches(api, {"number": "012", "full_number": "RFI-012"})
    assert matches(api, {"number": "9", "full_number": "RFI-9"})
    assert not matches(api, {"number": "120", "full_number": "120"})
    assert number_key("007.01") == "7.01" and number_key("C-7") == "C-7"
