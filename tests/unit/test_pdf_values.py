"""Cell values: numbers with prefixes, people lists, impacts."""

from __future__ import annotations

from typing import Any

import pytest

from eva00.pdf_import import values


@pytest.mark.parametrize(("printed", "expected"), [
    ("12", {"full_number": "12", "prefix": None, "number": "12"}),
    ("#12", {"full_number": "12", "prefix": None, "number": "12"}),
    ("RFI-012", {"full_number": "RFI-012", "prefix": "RFI", "number": "012"}),
    ("RFI #7", {"full_number": "RFI #7", "prefix": "RFI", "number": "7"}),
    ("ARCH-RFI-3.1", {"full_number": "ARCH-RFI-3.1", "prefix": "ARCH-RFI", "number": "3.1"}),
])
def test_rfi_numbers_split_into_prefix_and_number(printed: str, expected: dict[str, Any]) -> None:
    assert values.rfi_number(printed) == expected


@pytest.mark.parametrize("text", ["Question", "Confirmed.", "", "12 apples"])
def test_words_are_not_rfi_numbers(text: str) -> None:
    assert values.rfi_number(text) is None


@pytest.mark.parametrize(("printed", "expected"), [
    ("#007.01", {"formatted_number": "007.01", "spec_section_number": None, "number": "007",
                 "revision": "1"}),
    ("#03 30 00-007.00", {"formatted_number": "03 30 00-007.00", "spec_section_number": "03 30 00",
                          "number": "007", "revision": "0"}),
    ("033000-12", {"formatted_number": "033000-12", "spec_section_number": "033000", "number": "12",
                   "revision": None}),
    ("#5.1", {"formatted_number": "5.1", "spec_section_number": None, "number": "5.1", "revision": None}),
])
def test_submittal_numbers_split_into_spec_section_number_and_revision(printed: str,
                                                                       expected: dict[str, Any]) -> None:
    assert values.submittal_number(printed) == expected


def test_words_without_digits_are_not_submittal_numbers() -> None:
    assert values.submittal_number("Approved") is None


def test_people_split_on_commas_outside_parentheses() -> None:
    assert values.split_people("Ana Ruiz (Keystone Builders, Inc.), Bob Chen; Zoë Müller") == [
        "Ana Ruiz (Keystone Builders, Inc.)", "Bob Chen", "Zoë Müller"]


def test_a_person_splits_into_name_and_company() -> None:
    assert values.person("Søren Ødegård (Nordic Façades AS)") == ("Søren Ødegård", "Nordic Façades AS")
    assert values.person("Bob Chen") == ("Bob Chen", None)


@pytest.mark.parametrize(("text", "unit", "status", "value"), [
    ("Yes (5 days)", "days", "yes_known", 5),
    ("Yes ($12,500.50)", "money", "yes_known", 12500.5),
    ("Yes", "days", "yes_unknown", None),
    ("No", "money", "no_impact", None),
    ("TBD", "days", "tbd", None),
    ("N/A", "money", "n_a", None),
    ("Perhaps", "days", "unknown", None),
])
def test_impacts_read_as_procore_impact_statuses(text: str, unit: str, status: str, value: Any) -> None:
    assert values.impact(text, unit) == {"status": status, "value": value, "text": text}


def test_money_in_parentheses_is_negative() -> None:
    assert values.money("($1,200.00)") == -1200.0 and values.money("abc") is None
