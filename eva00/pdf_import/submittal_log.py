"""The submittal log export: its column labels and how one row becomes a record.

Record fields (present only when the column was shown): ``number`` (``007``; ``None`` for a
draft), ``formatted_number`` (as printed without ``#``: ``007.01``, or ``03 30 00-007.01`` when
numbers carry the spec section), ``spec_section_number`` (that prefix), ``revision`` (the Rev.
column, else the number's two-digit suffix: ``1``), ``title``, ``spec_section`` (as printed),
``type``, ``status``, ``responsible_contractor``, ``received_from``, ``submittal_manager``,
``response``, ``package``, ``cost_code``, ``location`` (as printed), ``ball_in_court``,
``approvers`` (lists), ``submit_by``, ``received_date``, ``issue_date``, ``sent_date``,
``due_date``, ``returned_date``, ``required_on_site_date`` (ISO dates), ``lead_time`` (days),
``schedule_impact``/``cost_impact`` and ``extra`` as in the RFI log.
"""

from __future__ import annotations

from typing import Any

from eva00.pdf_import import values
from eva00.pdf_import.convert import Converter
from eva00.pdf_import.layout import ColumnSpec, Vocabulary
from eva00.pdf_import.logs import RawRecord

KIND = "submittal"
TITLE = "submittal log"

VOCAB = Vocabulary([
    ColumnSpec("number", ("#", "No", "No.", "Number", "Submittal #", "Submittal No.", "Submittal Number")),
    ColumnSpec("title", ("Title", "Submittal Title")),
    ColumnSpec("spec_section", ("Spec Section", "Specification Section", "Specification")),
    ColumnSpec("revision", ("Rev", "Rev.", "Revision")),
    ColumnSpec("type", ("Type", "Submittal Type")),
    ColumnSpec("status", ("Status",)),
    ColumnSpec("responsible_contractor", ("Responsible Contractor",)),
    ColumnSpec("received_from", ("Received From",)),
    ColumnSpec("submittal_manager", ("Submittal Manager", "Manager")),
    ColumnSpec("ball_in_court", ("Ball In Court",), "people"),
    ColumnSpec("approvers", ("Approvers", "Approver"), "people"),
    ColumnSpec("response", ("Response",)),
    ColumnSpec("package", ("Package", "Submittal Package")),
    ColumnSpec("cost_code", ("Cost Code",)),
    ColumnSpec("location", ("Location",)),
    ColumnSpec("submit_by", ("Submit By", "Submit By Date"), "date"),
    ColumnSpec("received_date", ("Received Date", "Date Received"), "date"),
    ColumnSpec("issue_date", ("Issue Date", "Issued Date", "Date Issued"), "date"),
    ColumnSpec("sent_date", ("Sent Date", "Date Sent"), "date"),
    ColumnSpec("due_date", ("Due Date", "Final Due Date", "Due"), "date"),
    ColumnSpec("returned_date", ("Returned Date", "Date Returned"), "date"),
    ColumnSpec("required_on_site_date", ("Required On-Site Date", "Required On-Site",
                                         "Required On Site Date"), "date"),
    ColumnSpec("lead_time", ("Lead Time", "Lead Time (Days)"), "int"),
    ColumnSpec("schedule_impact", ("Schedule Impact",), "impact_days"),
    ColumnSpec("cost_impact", ("Cost Impact",), "impact_cost"),
], required="title")


def number_ok(text: str) -> bool:
    return values.submittal_number(text) is not None


def build(raw: RawRecord, convert: Converter) -> dict[str, Any]:
    printed = raw.text("number")
    parsed = values.submittal_number(printed) if printed else None
    label = f"submittal {parsed['formatted_number']}" if parsed else "draft submittal"
    record = convert.fields(raw, label)
    parsed = parsed or dict.fromkeys(("number", "formatted_number", "spec_section_number", "revision"))
    revision = parsed.pop("revision")
    record.update(parsed)
    if record.get("revision") is None and revision is not None:
        record["revision"] = revision
    return record
