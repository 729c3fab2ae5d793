"""Cell text -> values: numbers with prefixes, people lists, impacts, money, yes/no.

Printed values are kept as printed where Procore prints a display string (people "Jane Doe
(Smith Architects)", statuses); values with structure are parsed, keeping the printed text next
to the parsed value where parsing may lose something (impacts).
"""

from __future__ import annotations

import re
from typing import Any

# A number prefix: words of letters and digits, each ending in a letter (RFI, C, ARCH-RFI).
PREFIX = r"[A-Za-z](?:[A-Za-z0-9]*[A-Za-z])?(?:[ \-][A-Za-z](?:[A-Za-z0-9]*[A-Za-z])?)*"
RFI_NUMBER = re.compile(rf"^#?\s*(?P<full>(?:(?P<prefix>{PREFIX})\s*[-#:]?\s*)?(?P<number>\d+(?:\.\d+)*))$")
SPEC_SECTION = r"\d{2} ?\d{2} ?\d{2}(?:\.\d{2})?"
SUBMITTAL_NUMBER = re.compile(rf"^#?\s*(?P<full>(?:(?P<spec>{SPEC_SECTION})\s*-\s*)?"
                              r"(?P<number>(?=[A-Za-z0-9.\-]*\d)[A-Za-z0-9]+(?:[.\-][A-Za-z0-9]+)*))$")
REVISION_SUFFIX = re.compile(r"(?<=.)\.(\d{2})$")
MONEY = re.compile(r"^\(?-?[$€£]?\s*-?[\d,]+(?:\.\d{1,2})?\)?$")
DAYS = re.compile(r"(-?\d+)\s*(?:working\s+|calendar\s+)?days?", re.I)
# Procore's impact statuses (rfis.cost_impact.status, rfis.schedule_impact.status).
IMPACT_WORDS = {"no": "no_impact", "no impact": "no_impact", "tbd": "tbd", "n/a": "n_a",
                "na": "n_a", "yes": "yes_unknown", "yes (unknown)": "yes_unknown"}


def rfi_number(text: str) -> dict[str, Any] | None:
    """``RFI-012`` -> full_number RFI-012, prefix RFI, number 012 (None: not an RFI number)."""
    match = RFI_NUMBER.match(text.strip())
    if not match:
        return None
    return {"full_number": match["full"], "prefix": match["prefix"], "number": match["number"]}


def submittal_number(text: str) -> dict[str, Any] | None:
    """``#03 30 00-007.01`` -> formatted_number ``03 30 00-007.01``, spec section prefix
    ``03 30 00``, number ``007`` and revision ``1``: Procore prints a submittal's number with its
    revision as a two-digit suffix (``#007.00`` is revision 0 of submittal 007)."""
    match = SUBMITTAL_NUMBER.match(text.strip())
    if not match:
        return None
    number, revision = match["number"], None
    suffix = REVISION_SUFFIX.search(number)
    if suffix:
        number, revision = number[:suffix.start()], str(int(suffix[1]))
    return {"formatted_number": match["full"], "spec_section_number": match["spec"],
            "number": number, "revision": revision}


def split_people(text: str) -> list[str]:
    """``A (X, Inc.), B`` -> [``A (X, Inc.)``, ``B``]: commas inside parentheses do not split."""
    people: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        if char in ",;" and depth == 0:
            people.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    people.append("".join(current).strip())
    return [p for p in people if p]


def person(text: str) -> tuple[str, str | None]:
    """``Jane Doe (Smith Architects)`` -> (``Jane Doe``, ``Smith Architects``)."""
    match = re.match(r"^(.*?)\s*\((.+)\)$", text.strip())
    return (match[1], match[2]) if match else (text.strip(), None)


def money(text: str) -> float | None:
    text = text.strip()
    if not MONEY.match(text):
        return None
    negative = text.startswith("(") or "-" in text
    value = float(re.sub(r"[^\d.]", "", text))
    return -value if negative else value


def impact(text: str, unit: str) -> dict[str, Any]:
    """``Yes (5 days)`` / ``Yes ($12,500.00)`` / ``No`` / ``TBD`` / ``N/A`` as Procore's impact."""
    printed = " ".join(text.split())
    lowered = printed.lower()
    if lowered in IMPACT_WORDS:
        return {"status": IMPACT_WORDS[lowered], "value": None, "text": printed}
    inner = re.match(r"^yes\s*[(:,]?\s*(.*?)\)?$", lowered)
    value: float | int | None = None
    if inner:
        if unit == "days":
            days = DAYS.search(inner[1])
            value = int(days[1]) if days else None
        else:
            value = money(inner[1])
    if inner and value is not None:
        return {"status": "yes_known", "value": value, "text": printed}
    return {"status": "yes_unknown" if inner else "unknown", "value": None, "text": printed}


def yes_no(text: str) -> bool | None:
    return {"yes": True, "true": True, "no": False, "false": False}.get(text.strip().lower())


def whole_number(text: str) -> int | None:
    match = re.match(r"^(-?\d+)(?:\s*days?)?$", text.strip(), re.I)
    return int(match[1]) if match else None
