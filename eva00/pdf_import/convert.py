"""Raw cell texts -> typed record fields, once the file's date order is known."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eva00.pdf_import import dates, values
from eva00.pdf_import.layout import Vocabulary
from eva00.pdf_import.logs import QaBlock, RawRecord

# Cell texts meaning "no value" in a date column.
EMPTY_DATES = {"", "-", "--", "\u2013", "\u2014", "n/a", "na", "none", "tbd"}  # dashes: en, em


def date_texts(records: Iterable[RawRecord], vocab: Vocabulary) -> list[str]:
    """Every date printed in the file, for deciding the date order."""
    found = []
    for record in records:
        for name, spec in vocab.specs.items():
            text = record.text(name) if spec.kind == "date" else None
            if text:
                found.append(text)
        found += [block.date for block in record.qa]
    return found


class Converter:
    def __init__(self, vocab: Vocabulary, order: dates.DateFormat, warnings: list[str]) -> None:
        self.vocab, self.order, self.warnings = vocab, order, warnings

    def fields(self, record: RawRecord, label: str) -> dict[str, Any]:
        """Every shown column's value; an empty cell is None."""
        out: dict[str, Any] = {}
        for name in record.shown:
            text = record.text(name)
            value = None if text is None else self.value(name, text, f"page {record.page}: {label}")
            if name.startswith("extra:"):
                out.setdefault("extra", {})[name.removeprefix("extra:")] = value
            else:
                out[name] = value
        return out

    def value(self, name: str, text: str, where: str) -> Any:
        kind = self.vocab.spec(name).kind
        if kind == "date":
            return self.date(text, f"{where}: {name}")
        if kind == "people":
            return values.split_people(text)
        if kind == "impact_days":
            return values.impact(text, "days")
        if kind == "impact_cost":
            return values.impact(text, "money")
        if kind == "bool":
            return values.yes_no(text)
        if kind == "int":
            return values.whole_number(text)
        return text

    def date(self, text: str, where: str) -> str | None:
        if text.strip().lower() in EMPTY_DATES:
            return None
        parsed = dates.parse(text, self.order)
        if parsed is None:
            self.warnings.append(f"{where}: {text!r} is not a date")
            return None
        return parsed.isoformat()

    def questions(self, record: RawRecord, label: str) -> list[dict[str, Any]]:
        """Q&A blocks -> [{question..., responses: [...]}]; responses before any question hang
        under a question without text."""
        questions: list[dict[str, Any]] = []
        for block in record.qa:
            entry = self._block(block, f"page {block.page}: {label}")
            if block.kind == "question":
                questions.append({**entry, "responses": []})
            else:
                if not questions:
                    questions.append({"body": None, "author": None, "author_company": None,
                                      "date": None, "responses": []})
                questions[-1]["responses"].append({**entry, "official": block.official})
        return questions

    def _block(self, block: QaBlock, where: str) -> dict[str, Any]:
        author, company = values.person(block.who)
        return {"body": " ".join(block.body), "author": author, "author_company": company,
                "date": self.date(block.date, f"{where}: {block.kind} date")}
