"""Date order of exported logs: decided from the whole file, never guessed."""

from __future__ import annotations

from datetime import date

import pytest

from eva00.pdf_import.dates import DateFormat, DateFormatError, decide, is_date, parse


def test_a_day_above_twelve_in_first_place_settles_day_first() -> None:
    assert decide(["01/02/2024", "25/03/2024", "04/05/2024"]) is DateFormat.DMY


def test_a_day_above_twelve_in_second_place_settles_month_first() -> None:
    assert decide(["01/02/2024", "03/25/2024"]) is DateFormat.MDY


def test_dates_that_settle_nothing_are_refused_with_a_request_for_the_format() -> None:
    with pytest.raises(DateFormatError, match="--date-format mdy"):
        decide(["01/02/2024", "03/04/2024", "12/12/2024"])


def test_dates_settling_both_orders_are_a_contradiction() -> None:
    with pytest.raises(DateFormatError, match="mix day-first"):
        decide(["25/03/2024", "03/25/2024"])


def test_a_file_without_numeric_dates_needs_no_decision() -> None:
    assert decide(["2024-01-02", "Jan 5, 2024", "N/A"]) is DateFormat.MDY


def test_an_explicit_format_is_used_even_when_the_values_disagree() -> None:
    assert decide(["25/03/2024"], DateFormat.MDY) is DateFormat.MDY


@pytest.mark.parametrize(("text", "order", "expected"), [
    ("03/04/2024", DateFormat.MDY, date(2024, 3, 4)),
    ("03/04/2024", DateFormat.DMY, date(2024, 4, 3)),
    ("3.4.24", DateFormat.DMY, date(2024, 4, 3)),
    ("2024-12-31", DateFormat.DMY, date(2024, 12, 31)),
    ("Jan 5, 2024", DateFormat.DMY, date(2024, 1, 5)),
    ("05-Sep-2024", DateFormat.MDY, date(2024, 9, 5)),
    ("5 September 2024", DateFormat.MDY, date(2024, 9, 5)),
])
def test_printed_dates_parse_in_every_form_procore_uses(text: str, order: DateFormat, expected: date) -> None:
    assert parse(text, order) == expected


@pytest.mark.parametrize("text", ["02/30/2024", "13/13/2024", "Foo 5, 2024", "TBD", ""])
def test_impossible_or_non_dates_parse_to_none(text: str) -> None:
    assert parse(text, DateFormat.MDY) is None


def test_is_date_accepts_dates_and_rejects_words() -> None:
    assert is_date("01/05/2024") and is_date("2024-01-05") and not is_date("Open")
