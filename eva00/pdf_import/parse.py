"""Parse one exported log (already read into page lines) into its records.

The result is plain JSON-able data, as the sandboxed worker hands it to the importer:
``{"kind", "file", "pages", "date_format", "records": [...], "warnings": [...]}``; each record
carries ``_page`` (1-based page of its row).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from eva00.pdf_import import dates, rfi_log, submittal_log
from eva00.pdf_import.convert import Converter, date_texts
from eva00.pdf_import.document import BadInput, PageText
from eva00.pdf_import.layout import find_header
from eva00.pdf_import.logs import LogReader

LOG_KINDS: dict[str, ModuleType] = {"rfi": rfi_log, "submittal": submittal_log}


def parse_log(kind: str, pages: Sequence[PageText], date_format: dates.DateFormat,
              file_name: str) -> dict[str, Any]:
    module = LOG_KINDS[kind]
    reader = LogReader(module.VOCAB, module.number_ok, module.TITLE, with_qa=kind == "rfi")
    try:
        raws = reader.read(pages)
    except BadInput:
        _name_other_kind(kind, pages)
        raise
    try:
        order = dates.decide(date_texts(raws, module.VOCAB), date_format)
    except dates.DateFormatError as exc:
        raise BadInput(str(exc)) from None
    warnings: list[str] = []
    if raws and "number" not in raws[0].shown:
        warnings.append("the log shows no number column: its records cannot be matched to the API's")
    convert = Converter(module.VOCAB, order, warnings)
    records = [{**module.build(raw, convert), "_page": raw.page} for raw in raws]
    return {"kind": kind, "file": file_name, "pages": len(pages), "date_format": order.value,
            "records": records, "warnings": warnings}


def _name_other_kind(kind: str, pages: Sequence[PageText]) -> None:
    for other, module in LOG_KINDS.items():
        if other != kind and any(find_header(page.lines, module.VOCAB) for page in pages[:3]):
            raise BadInput(f"this is a {module.TITLE}, not a {LOG_KINDS[kind].TITLE}; use "
                           f"`eva00 import {other.replace('_', '-')}-log`")
