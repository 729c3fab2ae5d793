"""Dates in exported logs: numeric dates follow the project's locale, so the order is a setting.

Procore prints numeric dates as MM/DD/YYYY (US projects, its default) or DD/MM/YYYY, with no
marker saying which. ``--date-format auto`` decides from the values of the whole file:

- a value whose first part is above 12 settles DMY, one whose second part is above 12 settles MDY;
- values settling both ways are a contradiction: ``DateFormatError``;
- values that settle nothing (every day is 12 or less) are ambiguous: ``DateFormatError`` asking
  for ``--date-format mdy`` or ``dmy``. Guessing MDY would silently swap day and month of a DMY
  project's records, and these are legal documents; in practice a log of any size settles itself.
- a file with no numeric dates at all needs no decision (MDY is reported).

ISO dates (2024-01-31) and dates with month names (Jan 31, 2024 / 31 Jan 2024) are unambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from enum import Enum


class DateFormat(str, Enum):
    AUTO = "auto"
    MDY = "mdy"
    DMY = "dmy"


class DateFormatError(ValueError):
    """The file's dates cannot be read with the requested (or detected) order."""


NUMERIC = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})$")
ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
MONTH_FIRST = re.compile(r"^([A-Za-z]{3,9})\.? (\d{1,2}),? (\d{4})$")
DAY_FIRST = re.compile(r"^(\d{1,2})[ \-]([A-Za-z]{3,9})\.?[ \-](\d{4})$")
MONTHS = {name: index for index, names in enumerate(
    (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")), start=1) for name in names}
# A date somewhere inside a line of text (Q&A headings), in any of the forms above.
DATE_IN_TEXT = (r"(?:\d{1,2}[/.\-]\d{1,2}[/.\-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2}"
                r"|[A-Za-z]{3,9}\.? \d{1,2},? \d{4}|\d{1,2}[ \-][A-Za-z]{3,9}\.?[ \-]\d{4})")


def is_date(text: str) -> bool:
    text = text.strip()
    return bool(NUMERIC.match(text) or ISO.match(text) or _named(text))


def decide(values: Iterable[str], requested: DateFormat = DateFormat.AUTO) -> DateFormat:
    """The order to read this file's numeric dates in (see the module docstring)."""
    if requested is not DateFormat.AUTO:
        return requested
    day_first = month_first = undecided = 0
    example_dmy = example_mdy = ""
    for value in values:
        match = NUMERIC.match(value.strip())
        if not match:
            continue
        first, second = int(match.group(1)), int(match.group(2))
        if first > 12 >= second:
            day_first, example_dmy = day_first + 1, value
        elif second > 12 >= first:
            month_first, example_mdy = month_first + 1, value
        else:
            undecided += 1
    if day_first and month_first:
        raise DateFormatError(f"dates mix day-first ({example_dmy}) and month-first ({example_mdy})"
                              " orders; pass --date-format mdy or dmy")
    if day_first:
        return DateFormat.DMY
    if month_first or not undecided:
        return DateFormat.MDY
    raise DateFormatError(f"all {undecided} dates are ambiguous (no day above 12); pass "
                          "--date-format mdy (Procore's US default) or dmy")


def parse(text: str, order: DateFormat) -> date | None:
    """A printed date as a date; None when the text is not a date or names an impossible day."""
    text = text.strip()
    try:
        if match := NUMERIC.match(text):
            first, second, year = (int(g) for g in match.groups())
            year += 2000 if year < 100 else 0
            return date(year, first, second) if order is DateFormat.MDY else date(year, second, first)
        if match := ISO.match(text):
            return date(*(int(g) for g in match.groups()))
        return _named(text)
    except ValueError:
        return None


def _named(text: str) -> date | None:
    if match := MONTH_FIRST.match(text):
        month, day, year = MONTHS.get(match.group(1).lower()), match.group(2), match.group(3)
    elif match := DAY_FIRST.match(text):
        day, month, year = match.group(1), MONTHS.get(match.group(2).lower()), match.group(3)
    else:
        return None
    if month is None:
        return None
    try:
        return date(int(year), month, int(day))
    except ValueError:
        return None
