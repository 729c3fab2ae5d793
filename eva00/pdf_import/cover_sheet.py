"""A submittal cover sheet: its metadata (``Label: value`` pairs) and every attachment link.

The title line ``Submittal #03 30 00-007.01: Concrete Mix Design`` gives the number and title;
``Label: value`` pairs (one or two per line) give the submittal's fields, named as in the submittal
log; a label alone on its line (``Description:``) takes the lines below it. Attachments are the
link annotations (and printed URLs) below the ``Attachments`` heading, or every link on a sheet
without that heading; each keeps the text it is drawn on as its name. Nothing here fetches
anything: links are only collected, the SSRF guard judges them later.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from eva00.pdf_import import dates, values
from eva00.pdf_import.convert import Converter
from eva00.pdf_import.document import BadInput, PageText
from eva00.pdf_import.layout import ColumnSpec, Vocabulary, norm_label
from eva00.pdf_import.submittal_log import VOCAB as LOG_VOCAB
from eva00.pdf_import.words import Line

VOCAB = Vocabulary([*LOG_VOCAB.specs.values(), ColumnSpec("description", ("Description",)),
                    ColumnSpec("project", ("Project", "Project Name"))], required="title")
TITLE = re.compile(r"^Submittal\s+(?P<number>#\S.*?)\s*(?::|\s[-\u2013\u2014])\s*(?P<title>.+)$")
LABEL = re.compile(r"(?:^|(?<=\s))(?P<label>{})\s*:(?:\s+|$)".format(
    "|".join(sorted((re.escape(label) for spec in VOCAB.specs.values() for label in spec.labels
                     if label[0].isalpha()), key=len, reverse=True))), re.I)
ATTACHMENTS_HEADING = re.compile(r"^(attachments|attached files|files)\s*:?$", re.I)
URL_IN_TEXT = re.compile(r"\b(?:https?|ftp|file|gopher|dict)://\S+", re.I)
NAME_SLACK = 1.5  # points around a link's rectangle where its words may sit


def parse_cover_sheet(pages: Sequence[PageText], links: Sequence[Sequence[dict[str, Any]]],
                      date_format: dates.DateFormat, file_name: str) -> dict[str, Any]:
    lines = [line for page in pages for line in page.lines]
    title = next((m for m in (TITLE.match(line.text) for line in lines[:20]) if m), None)
    number = values.submittal_number(title["number"]) if title else None
    if title is None or number is None:
        raise BadInput("no 'Submittal #...' title found (is this a Procore submittal cover sheet?)")
    raw = _pairs(lines)
    try:
        order = dates.decide([v for k, v in raw.items() if VOCAB.spec(k).kind == "date"], date_format)
    except dates.DateFormatError as exc:
        raise BadInput(str(exc)) from None
    warnings: list[str] = []
    convert = Converter(VOCAB, order, warnings)
    label = f"submittal {number['formatted_number']}"
    revision = number.pop("revision")
    submittal = {**number, "title": title["title"].strip(),
                 **{k: convert.value(k, v, f"page 1: {label}") if v else None for k, v in raw.items()}}
    if submittal.get("revision") is None and revision is not None:
        submittal["revision"] = revision
    return {"kind": "cover_sheet", "file": file_name, "pages": len(pages), "date_format": order.value,
            "submittal": submittal, "attachments": _attachments(pages, links), "warnings": warnings}


def _pairs(lines: Sequence[Line]) -> dict[str, str]:
    """``Label: value`` pairs; a label without a value on its line takes the lines below it."""
    found: dict[str, str] = {}
    open_label: str | None = None
    for line in lines:
        if ATTACHMENTS_HEADING.match(line.text):
            break
        matches = list(LABEL.finditer(line.text))
        if not matches:
            if open_label:
                found[open_label] = f"{found[open_label]} {line.text}".strip()
            continue
        open_label = None
        for match, after in zip(matches, [*matches[1:], None], strict=True):
            field = VOCAB.by_label[norm_label(match["label"])].field
            found[field] = line.text[match.end():after.start() if after else None].strip()
            if not found[field] and after is None:
                open_label = field
    return found


def _attachments(pages: Sequence[PageText],
                 links: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    heading = next(((p.number, line.y1) for p in pages for line in p.lines
                    if ATTACHMENTS_HEADING.match(line.text)), None)
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for page, page_links in zip(pages, links, strict=True):
        def below(y: float, number: int = page.number) -> bool:
            return heading is None or (number, y) > heading

        for link in page_links:
            url = link.get("uri") or (f"file://{link['file']}" if link.get("file") else "")
            x0, y0, x1, y1 = link["from"]
            if url and below(y0) and url not in seen:
                seen.add(url)
                found.append({"name": _words_in(page, (x0, y0, x1, y1)) or url, "url": url,
                              "page": page.number})
        for line in page.lines:
            for match in URL_IN_TEXT.finditer(line.text):
                url = match.group(0).rstrip(".,;)")
                if below(line.y0) and url not in seen:
                    seen.add(url)
                    found.append({"name": url, "url": url, "page": page.number})
    return found


def _words_in(page: PageText, rect: tuple[float, float, float, float]) -> str:
    x0, y0, x1, y1 = rect
    return " ".join(w[4] for line in page.lines for w in line.words
                    if w[0] >= x0 - NAME_SLACK and w[2] <= x1 + NAME_SLACK
                    and w[1] >= y0 - NAME_SLACK and w[3] <= y1 + NAME_SLACK)
