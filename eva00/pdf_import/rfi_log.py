"""The RFI log export: its column labels and how one row (and its Q&A) becomes a record.

Record fields (present only when the column was shown): ``number`` (digits, ``None`` for a draft),
``full_number`` and ``prefix`` (``RFI-012`` -> RFI / 012), ``subject``, ``status``,
``responsible_contractor``, ``received_from``, ``rfi_manager``, ``created_by`` (as printed),
``assignees``, ``ball_in_court``, ``distribution`` (lists), ``date_initiated``, ``due_date``,
``closed_date`` (ISO dates), ``cost_code``, ``location``, ``spec_section``, ``drawing_number``,
``reference``, ``private`` (bool), ``schedule_impact``/``cost_impact`` (``{status, value, text}``
with Procore's statuses), ``extra`` (columns this importer does not know, by label) and, in the
Q&A variant, ``questions``: ``[{body, author, author_company, date, responses: [{..., official}]}]``.
"""

from __future__ import annotations

from typing import Any

from eva00.pdf_import import values
from eva00.pdf_import.convert import Converter
from eva00.pdf_import.layout import ColumnSpec, Vocabulary
from eva00.pdf_import.logs import RawRecord

KIND = "rfi"
TITLE = "RFI log"

VOCAB = Vocabulary([
    ColumnSpec("number", ("#", "No", "No.", "Number", "RFI #", "RFI No.", "RFI Number")),
    ColumnSpec("subject", ("Subject", "RFI Subject")),
    ColumnSpec("status", ("Status",)),
    ColumnSpec("responsible_contractor", ("Responsible Contractor",)),
    ColumnSpec("received_from", ("Received From",)),
    ColumnSpec("assignees", ("Assignees", "Assignee", "Assigned To"), "people"),
    ColumnSpec("rfi_manager", ("RFI Manager", "Manager")),
    ColumnSpec("ball_in_court", ("Ball In Court",), "people"),
    ColumnSpec("created_by", ("Created By",)),
    ColumnSpec("distribution", ("Distribution", "Distribution List"), "people"),
    ColumnSpec("date_initiated", ("Date Initiated", "Initiated", "Initiated On", "Date Created",
                                  "Created", "Created On"), "date"),
    ColumnSpec("due_date", ("Due Date", "Due"), "date"),
    ColumnSpec("closed_date", ("Closed Date", "Date Closed", "Closed On"), "date"),
    ColumnSpec("cost_code", ("Cost Code",)),
    ColumnSpec("location", ("Location",)),
    ColumnSpec("schedule_impact", ("Schedule Impact",), "impact_days"),
    ColumnSpec("cost_impact", ("Cost Impact",), "impact_cost"),
    ColumnSpec("spec_section", ("Spec Section", "Specification Section", "Specification")),
    ColumnSpec("drawing_number", ("Drawing Number", "Drawing No.", "Drawing")),
    ColumnSpec("reference", ("Reference",)),
    ColumnSpec("private", ("Private",), "bool"),
], required="subject")


def number_ok(text: str) -> bool:
    return values.rfi_number(text) is not None


def build(raw: RawRecord, convert: Converter) -> dict[str, Any]:
    printed = raw.text("number")
    parsed = values.rfi_number(printed) if printed else None
    label = f"RFI {parsed['full_number']}" if parsed else "draft RFI"
    record = convert.fields(raw, label)
    record.update(parsed or {"number": None, "full_number": None, "prefix": None})
    if raw.qa:
        record["questions"] = convert.questions(raw, label)
    return record
