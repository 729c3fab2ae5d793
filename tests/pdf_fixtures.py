"""Realistic Procore PDF exports written with PyMuPDF, with the records each one must parse into.

Logs are drawn the way Procore's exports look: a page header (company, project, title), the
column header row repeated on every page (labels wrapping onto two lines in narrow columns),
left-aligned cells wrapping inside their columns, rows and Q&A text running across page breaks,
and a footer ("Page 3 of 98"). Columns come in any order and subset. Text is written straight
into content streams with the standard Helvetica fonts (WinAnsi: accented Latin names work), which
is ~100x faster than ``page.insert_text`` and keeps the whole suite fast.

Every writer returns the expected records (what the importer must produce, field by field), so
tests compare parsed output with ground truth rather than with a previous run.
"""

from __future__ import annotations

import http.server
import random
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pymupdf

LANDSCAPE = (792.0, 612.0)
PORTRAIT = (612.0, 792.0)
MARGIN = 36.0
FONT_SIZE = 7.0
PITCH = 9.0  # baseline to baseline
PAD = 3.0  # cell padding left and right
QA_SIZE = 8.5
QA_PITCH = 11.0
BODY_BOTTOM = 552.0  # no body text below this baseline (landscape)


# --- drawing ---

def _escape(text: str) -> bytes:
    raw = text.encode("cp1252")  # the standard fonts' WinAnsi encoding
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


_ADVANCES: dict[tuple[str, bool], float] = {}
_FONTS = {False: pymupdf.Font("helv"), True: pymupdf.Font("hebo")}


def text_width(text: str, size: float = FONT_SIZE, bold: bool = False) -> float:
    """Width of text in a standard font (per-character advances, cached: PyMuPDF's own
    measurement costs ~0.4 ms a call)."""
    total = 0.0
    for char in text:
        advance = _ADVANCES.get((char, bold))
        if advance is None:
            advance = _ADVANCES[char, bold] = _FONTS[bold].glyph_advance(ord(char))
        total += advance
    return total * size


def wrap(text: str, width: float, size: float = FONT_SIZE, bold: bool = False) -> list[str]:
    """Greedy word wrap as a PDF renderer would do it; a word never splits."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and text_width(candidate, size, bold) <= width:
            lines[-1] = candidate
        else:
            if text_width(word, size, bold) > width:
                raise ValueError(f"word {word!r} does not fit a {width:.0f} pt column")
            lines.append(word)
    return lines


class Canvas:
    """One page's text and links, written as a raw content stream when finished."""

    def __init__(self, doc: Any, size: tuple[float, float]) -> None:
        self.doc, self.width, self.height = doc, size[0], size[1]
        self.page = doc.new_page(width=size[0], height=size[1])
        self.page.insert_font(fontname="helv")
        self.page.insert_font(fontname="hebo")
        self.ops: list[bytes] = []

    def text(self, x: float, baseline: float, text: str, size: float = FONT_SIZE,
             bold: bool = False) -> None:
        font = b"hebo" if bold else b"helv"
        self.ops.append(b"BT /%s %.2f Tf 1 0 0 1 %.2f %.2f Tm (%s) Tj ET"
                        % (font, size, x, self.height - baseline, _escape(text)))

    def link(self, x: float, baseline: float, text: str, uri: str, size: float = FONT_SIZE) -> None:
        self.text(x, baseline, text, size)
        rect = pymupdf.Rect(x, baseline - size, x + text_width(text, size), baseline + 2)
        self.page.insert_link({"kind": pymupdf.LINK_URI, "from": rect, "uri": uri})

    def finish(self) -> None:
        xref = self.doc.get_new_xref()
        self.doc.update_object(xref, "<<>>")
        self.doc.update_stream(xref, b"\n".join(self.ops))
        refs = " ".join(f"{x} 0 R" for x in [*self.page.get_contents(), xref])
        self.doc.xref_set_key(self.page.xref, "Contents", f"[{refs}]")


# --- sample data ---

PEOPLE = [("Ana Ruiz", "Keystone Builders, Inc."), ("José Álvarez", "Álvarez Concrete"),
          ("Zoë Müller", "Müller & Söhne Steel"), ("Søren Ødegård", "Nordic Façades AS"),
          ("Françoise Lefèvre", "Lefèvre Architectes"), ("Bob Chen", "Chen MEP Engineers"),
          ("Priya Natarajan", "Summit Structural"), ("Liam O'Brien", "O'Brien Electric"),
          ("Noémie Côté", "Côté Design Group"), ("Dmitri Šimek", "Šimek Glazing")]
SUBJECTS = ["Slab thickness at grid C/4", "Embed plate conflict with post-tensioning tendons at level 3",
            "Curtain wall anchor spacing", "Fire damper access in corridor ceiling",
            "Clarify waterproofing detail at podium to tower transition including drainage mat",
            "Storefront head height", "Roof drain sizing", "Elevator pit depth vs. geotechnical report",
            "Duct routing above grid lines 5-7 conflicts with beam penetrations shown on S-201",
            "Door hardware set 14", "Façade mock-up schedule", "Rebar lap length for #8 bars"]
SENTENCES = ["Please confirm the dimension shown on the structural drawings.",
             "The architectural and structural sheets disagree at this location.",
             "Field measurements show a 40 mm difference from the drawings.",
             "Provide direction before the concrete pour scheduled next week.",
             "Refer to the attached sketch and photos from the site walk.",
             "The submitted product does not meet the specified fire rating.",
             "Use the detail on A-501 and extend the membrane 300 mm up the wall.",
             "Coordinate with the mechanical contractor before fabrication.",
             "This change has no impact on the contract sum.",
             "Revised drawings will be issued in the next bulletin.",
             "Maintain the clearances required by the elevator manufacturer.",
             "See the revised detail; the anchor spacing remains at 600 mm on centre."]
STATUSES = ["Open", "Closed", "Open", "Closed", "Open"]
COST_CODES = ["03-300 Cast-in-Place Concrete", "05-120 Structural Steel", "07-100 Waterproofing",
              "08-400 Storefronts", "23-300 HVAC Air Distribution", "26-050 Electrical"]
LOCATIONS = ["Level 1", "Level 3 > Grid C/4", "Roof", "Podium", "Tower > Core", "Parking P2"]
SPECS = [("03 30 00", "Cast-in-Place Concrete"), ("05 12 00", "Structural Steel Framing"),
         ("07 13 00", "Sheet Waterproofing"), ("08 44 13", "Glazed Aluminum Curtain Walls"),
         ("23 31 13", "Metal Ducts"), ("14 21 00", "Electric Traction Elevators")]


def display(person: tuple[str, str]) -> str:
    return f"{person[0]} ({person[1]})"


def print_date(value: date | None, order: str) -> str:
    if value is None:
        return ""
    if order == "dmy":
        return f"{value.day:02d}/{value.month:02d}/{value.year}"
    return f"{value.month:02d}/{value.day:02d}/{value.year}"


def _impact(kind: str, status: str, value: float) -> str:
    if status == "yes_known":
        return f"Yes ({int(value)} days)" if kind == "days" else f"Yes (${value:,.2f})"
    return {"yes_unknown": "Yes", "no_impact": "No", "tbd": "TBD", "n_a": "N/A"}[status]


def _impact_expected(kind: str, status: str, value: float) -> dict[str, Any]:
    known = status == "yes_known"
    parsed = (int(value) if kind == "days" else float(value)) if known else None
    return {"status": status, "value": parsed, "text": _impact(kind, status, value)}


@dataclass
class Qa:
    author: tuple[str, str]
    on: date
    body: str
    official: bool = False


@dataclass
class Rfi:
    number: str | None  # as printed ("RFI-012", "12"); None: a draft without a number
    subject: str
    status: str
    responsible_contractor: str
    received_from: tuple[str, str]
    assignees: list[tuple[str, str]]
    rfi_manager: tuple[str, str]
    ball_in_court: list[tuple[str, str]]
    date_initiated: date
    due_date: date | None
    closed_date: date | None
    cost_code: str
    location: str
    schedule_impact: tuple[str, float]
    cost_impact: tuple[str, float]
    spec_section: str
    private: bool
    questions: list[tuple[Qa, list[Qa]]] = field(default_factory=list)


def make_rfis(count: int, seed: int = 7, *, prefix: str = "RFI-", drafts: int = 0, qa: bool = False,
              qa_sentences: tuple[int, int] = (2, 5), start: date = date(2024, 1, 3)) -> list[Rfi]:
    """``count`` RFIs numbered 1..count (the last ``drafts`` of them without a number)."""
    rng = random.Random(seed)
    impacts = ["yes_known", "yes_unknown", "no_impact", "tbd", "n_a"]
    rfis = []
    for i in range(1, count + 1):
        initiated = start + timedelta(days=rng.randrange(0, 300))
        closed = rng.random() < 0.4
        status = "Draft" if i > count - drafts else ("Closed" if closed else "Open")
        spec = rng.choice(SPECS)
        rfi = Rfi(
            number=None if status == "Draft" else f"{prefix}{i:03d}" if prefix else str(i),
            subject=rng.choice(SUBJECTS), status=status,
            responsible_contractor=rng.choice(PEOPLE)[1], received_from=rng.choice(PEOPLE),
            assignees=rng.sample(PEOPLE, rng.randint(1, 3)), rfi_manager=rng.choice(PEOPLE),
            ball_in_court=rng.sample(PEOPLE, 1), date_initiated=initiated,
            due_date=initiated + timedelta(days=rng.randint(5, 20)),
            closed_date=initiated + timedelta(days=rng.randint(3, 40)) if closed else None,
            cost_code=rng.choice(COST_CODES), location=rng.choice(LOCATIONS),
            schedule_impact=(rng.choice(impacts), rng.randint(1, 30)),
            cost_impact=(rng.choice(impacts), rng.randint(100, 90000) + rng.choice((0, 0.5))),
            spec_section=f"{spec[0]} - {spec[1]}", private=rng.random() < 0.2)
        if qa:
            rfi.questions = [_qa_thread(rng, initiated, qa_sentences)]
        rfis.append(rfi)
    return rfis


def _qa_thread(rng: random.Random, on: date, sentences: tuple[int, int]) -> tuple[Qa, list[Qa]]:
    def text() -> str:
        return " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(*sentences)))

    question = Qa(rng.choice(PEOPLE), on, text())
    responses = [Qa(rng.choice(PEOPLE), on + timedelta(days=k + 1), text()) for k in range(rng.randint(1, 3))]
    rng.choice(responses).official = True
    return question, responses


# --- log columns ---

@dataclass(frozen=True)
class Col:
    field: str
    label: str
    width: float


RFI_COLUMNS = [
    Col("number", "#", 46), Col("subject", "Subject", 112), Col("status", "Status", 30),
    Col("responsible_contractor", "Responsible Contractor", 62), Col("received_from", "Received From", 62),
    Col("assignees", "Assignees", 70), Col("rfi_manager", "RFI Manager", 58),
    Col("ball_in_court", "Ball In Court", 58), Col("date_initiated", "Date Initiated", 44),
    Col("due_date", "Due Date", 44), Col("closed_date", "Closed Date", 44),
    Col("cost_code", "Cost Code", 56), Col("location", "Location", 48),
    Col("schedule_impact", "Schedule Impact", 44), Col("cost_impact", "Cost Impact", 52),
    Col("spec_section", "Spec Section", 64), Col("private", "Private", 32),
    Col("sub_job", "Sub Job", 40),  # a column the importer does not know: kept under "extra"
]
RFI_DEFAULT = ["number", "subject", "status", "responsible_contractor", "received_from", "assignees",
               "date_initiated", "due_date", "closed_date", "cost_code", "schedule_impact", "cost_impact",
               "spec_section"]


def columns(catalogue: Sequence[Col], fields: Sequence[str]) -> list[Col]:
    by_field = {c.field: c for c in catalogue}
    return [by_field[f] for f in fields]


def rfi_cells(rfi: Rfi, order: str) -> dict[str, str]:
    return {
        "number": rfi.number or "", "subject": rfi.subject, "status": rfi.status,
        "responsible_contractor": rfi.responsible_contractor, "received_from": display(rfi.received_from),
        "assignees": ", ".join(display(p) for p in rfi.assignees), "rfi_manager": display(rfi.rfi_manager),
        "ball_in_court": ", ".join(display(p) for p in rfi.ball_in_court),
        "date_initiated": print_date(rfi.date_initiated, order), "due_date": print_date(rfi.due_date, order),
        "closed_date": print_date(rfi.closed_date, order), "cost_code": rfi.cost_code,
        "location": rfi.location, "schedule_impact": _impact("days", *rfi.schedule_impact),
        "cost_impact": _impact("money", *rfi.cost_impact), "spec_section": rfi.spec_section,
        "private": "Yes" if rfi.private else "No", "sub_job": _sub_job(rfi),
    }


def _sub_job(rfi: Rfi) -> str:
    return "Tower" if rfi.date_initiated.day % 2 else "Podium"


def expected_rfi(rfi: Rfi, fields: Sequence[str], page: int, qa: bool) -> dict[str, Any]:
    """What the importer must produce for this RFI from a log showing ``fields``."""
    values: dict[str, Any] = {
        "subject": rfi.subject, "status": rfi.status, "responsible_contractor": rfi.responsible_contractor,
        "received_from": display(rfi.received_from), "assignees": [display(p) for p in rfi.assignees],
        "rfi_manager": display(rfi.rfi_manager), "ball_in_court": [display(p) for p in rfi.ball_in_court],
        "date_initiated": rfi.date_initiated.isoformat(),
        "due_date": rfi.due_date.isoformat() if rfi.due_date else None,
        "closed_date": rfi.closed_date.isoformat() if rfi.closed_date else None,
        "cost_code": rfi.cost_code, "location": rfi.location,
        "schedule_impact": _impact_expected("days", *rfi.schedule_impact),
        "cost_impact": _impact_expected("money", *rfi.cost_impact),
        "spec_section": rfi.spec_section, "private": rfi.private,
    }
    record = {f: values[f] for f in fields if f not in ("number", "sub_job")}
    if "sub_job" in fields:
        record["extra"] = {"Sub Job": _sub_job(rfi)}
    shown = rfi.number if "number" in fields else None
    prefix, _, digits = (shown or "").rpartition("-")
    record.update({"number": digits or None, "full_number": shown, "prefix": prefix or None})
    if qa and rfi.questions:
        record["questions"] = [_expected_thread(q, rs) for q, rs in rfi.questions]
    record["_page"] = page
    return record


def _expected_thread(question: Qa, responses: list[Qa]) -> dict[str, Any]:
    def entry(qa: Qa) -> dict[str, Any]:
        return {"body": qa.body, "author": qa.author[0], "author_company": qa.author[1],
                "date": qa.on.isoformat()}

    return {**entry(question), "responses": [{**entry(r), "official": r.official} for r in responses]}


# --- writing a log ---

@dataclass
class LogStyle:
    title: str = "RFIs"
    company: str = "Keystone Builders, Inc."
    project: str = "Riverside Tower (#1001)"
    order: str = "mdy"
    printed_on: date = date(2024, 12, 3)
    repeat_header: bool = True  # the column header row on every page, or on the first only


@dataclass
class WrittenLog:
    records: list[dict[str, Any]]  # what the importer must produce, in order
    pages: int
    split_rows: int  # rows whose cells continue on the next page
    split_qa: int  # questions or responses whose text continues on the next page


WRAPPABLE = {"subject", "title", "responsible_contractor", "received_from", "assignees", "rfi_manager",
             "ball_in_court", "approvers", "cost_code", "location", "spec_section", "type"}


class LogWriter:
    """Lays rows (and Q&A blocks) out over landscape pages; pages are drawn once counted."""

    def __init__(self, cols: Sequence[Col], style: LogStyle) -> None:
        # Columns holding single tokens (numbers, dates, impacts) keep their width; text columns
        # shrink to fit the page and wrap more.
        fixed = sum(c.width for c in cols if c.field not in WRAPPABLE)
        flexible = sum(c.width for c in cols if c.field in WRAPPABLE) or 1.0
        scale = min(1.0, (LANDSCAPE[0] - 2 * MARGIN - fixed) / flexible)
        self.cols = [Col(c.field, c.label, c.width * scale if c.field in WRAPPABLE else c.width)
                     for c in cols]
        self.style = style
        self.xs = [MARGIN + sum(c.width for c in self.cols[:i]) for i in range(len(self.cols))]
        self.pages: list[list[Callable[[Canvas], None]]] = []
        self.y = 0.0
        self.split_rows = self.split_qa = 0
        self._new_page()

    def _new_page(self) -> None:
        self.pages.append([])
        if len(self.pages) > 1 and not self.style.repeat_header:
            self.y = 84.0
            return
        labels = [wrap(c.label, c.width - 2 * PAD, bold=True) for c in self.cols]
        y = 92.0
        for x, lines in zip(self.xs, labels, strict=True):
            for k, text in enumerate(lines):
                self._draw(x + PAD, y + k * PITCH, text, bold=True)
        self.y = y + PITCH * max(len(lines) for lines in labels) + 6

    def _draw(self, x: float, y: float, text: str, size: float = FONT_SIZE, bold: bool = False) -> None:
        self.pages[-1].append(lambda c: c.text(x, y, text, size, bold))

    def _advance(self, pitch: float) -> float:
        if self.y + pitch > BODY_BOTTOM:
            self._new_page()
        y = self.y
        self.y += pitch
        return y

    def row(self, cells: dict[str, str]) -> int:
        """Draw one row; returns the page it starts on (1-based)."""
        wrapped = [wrap(cells.get(c.field, ""), c.width - 2 * PAD) for c in self.cols]
        height = max(len(lines) for lines in wrapped)
        self.y += 3
        first_page = 0
        for k in range(height):
            y = self._advance(PITCH)
            first_page = first_page or len(self.pages)
            for x, lines in zip(self.xs, wrapped, strict=True):
                if k < len(lines):
                    self._draw(x + PAD, y, lines[k])
        self.split_rows += len(self.pages) > first_page
        return first_page

    def qa(self, heading: str, body: str) -> None:
        self._draw(MARGIN + 10, self._advance(QA_PITCH), heading, QA_SIZE, bold=True)
        first_page = len(self.pages)
        width = sum(c.width for c in self.cols) - 30
        for text in wrap(body, width, QA_SIZE):
            self._draw(MARGIN + 20, self._advance(QA_PITCH), text, QA_SIZE)
        self.split_qa += len(self.pages) > first_page

    def result(self, records: list[dict[str, Any]]) -> WrittenLog:
        return WrittenLog(records, len(self.pages), self.split_rows, self.split_qa)

    def save(self, path: Path) -> Path:
        doc = pymupdf.open()
        for number, ops in enumerate(self.pages, start=1):
            canvas = Canvas(doc, LANDSCAPE)
            self._furniture(canvas, number)
            for op in ops:
                op(canvas)
            canvas.finish()
        doc.save(path)
        return path

    def _furniture(self, canvas: Canvas, number: int) -> None:
        s = self.style
        canvas.text(MARGIN, 34, s.company, 11, bold=True)
        canvas.text(MARGIN, 48, f"Project: {s.project}", 8)
        canvas.text(MARGIN, 60, "1200 River Road, Portland, OR 97201", 8)
        canvas.text(640, 34, s.title, 14, bold=True)
        canvas.text(640, 48, f"Printed: {print_date(s.printed_on, s.order)}", 8)
        canvas.text(MARGIN, 588, f"{s.company} - Confidential", 7)
        canvas.text(370, 588, f"Page {number} of {len(self.pages)}", 7)


def heading(kind: str, qa: Qa, order: str) -> str:
    official = "Official " if qa.official else ""
    return f"{official}{kind} from {display(qa.author)} on {print_date(qa.on, order)}"


def write_rfi_log(path: Path, rfis: Sequence[Rfi], fields: Sequence[str] = tuple(RFI_DEFAULT), *,
                  order: str = "mdy", qa: bool = False, style: LogStyle | None = None) -> WrittenLog:
    """Write an RFI log; returns the records the importer must produce from it."""
    writer = LogWriter(columns(RFI_COLUMNS, fields), style or LogStyle("RFIs", order=order))
    expected = []
    for rfi in rfis:
        page = writer.row(rfi_cells(rfi, order))
        if qa:
            for question, responses in rfi.questions:
                writer.qa(heading("Question", question, order), question.body)
                for response in responses:
                    writer.qa(heading("Response", response, order), response.body)
        expected.append(expected_rfi(rfi, fields, page, qa))
    writer.save(path)
    return writer.result(expected)


# --- submittals ---

@dataclass
class Submittal:
    spec: tuple[str, str]
    number: str | None  # "007"; None: a draft
    revision: str  # "1": printed as the number's suffix too ("#007.01")
    title: str
    type: str
    status: str
    responsible_contractor: str
    received_from: tuple[str, str]
    approvers: list[tuple[str, str]]
    ball_in_court: list[tuple[str, str]]
    issue_date: date
    due_date: date | None
    returned_date: date | None
    lead_time: int
    cost_code: str


SUBMITTAL_TITLES = ["Concrete Mix Design", "Anchor Bolt Shop Drawings and Embed Plate Layout",
                    "Waterproofing Membrane Product Data", "Curtain Wall Shop Drawings, Levels 2 through 14",
                    "Duct Sealant Product Data", "Elevator Cab Finishes Samples", "Rebar Shop Drawings"]


def make_submittals(count: int, seed: int = 11, drafts: int = 0,
                    start: date = date(2024, 2, 1)) -> list[Submittal]:
    rng = random.Random(seed)
    items = []
    for i in range(1, count + 1):
        issued = start + timedelta(days=rng.randrange(0, 200))
        returned = rng.random() < 0.5
        draft = i > count - drafts
        items.append(Submittal(
            spec=rng.choice(SPECS), number=None if draft else f"{i:03d}",
            revision=str(rng.randint(0, 2)), title=rng.choice(SUBMITTAL_TITLES),
            type=rng.choice(["Shop Drawing", "Product Data", "Sample", "Mix Design"]),
            status="Draft" if draft else rng.choice(["Open", "Approved", "Approved as Noted",
                                                     "Revise and Resubmit"]),
            responsible_contractor=rng.choice(PEOPLE)[1], received_from=rng.choice(PEOPLE),
            approvers=rng.sample(PEOPLE, rng.randint(1, 2)), ball_in_court=rng.sample(PEOPLE, 1),
            issue_date=issued, due_date=issued + timedelta(days=14),
            returned_date=issued + timedelta(days=rng.randint(5, 30)) if returned else None,
            lead_time=rng.randint(5, 90), cost_code=rng.choice(COST_CODES)))
    return items


SUBMITTAL_COLUMNS = [
    Col("spec_section", "Spec Section", 80), Col("number", "#", 66), Col("revision", "Rev.", 22),
    Col("title", "Title", 120), Col("type", "Type", 50), Col("status", "Status", 52),
    Col("responsible_contractor", "Responsible Contractor", 66), Col("received_from", "Received From", 66),
    Col("approvers", "Approvers", 70), Col("ball_in_court", "Ball In Court", 62),
    Col("issue_date", "Issue Date", 44), Col("due_date", "Due Date", 44),
    Col("returned_date", "Returned Date", 44), Col("lead_time", "Lead Time", 28),
    Col("cost_code", "Cost Code", 60),
]
SUBMITTAL_DEFAULT = ["spec_section", "number", "revision", "title", "type", "status",
                     "responsible_contractor", "ball_in_court", "issue_date", "due_date", "returned_date",
                     "lead_time", "cost_code"]


def printed_number(s: Submittal, spec_prefix: bool) -> str:
    """Procore's submittal number: [spec section-]number.revision (two digits)."""
    number = f"{s.number}.{int(s.revision):02d}"
    return f"{s.spec[0]}-{number}" if spec_prefix else number


def submittal_cells(s: Submittal, order: str, spec_prefix: bool) -> dict[str, str]:
    number = f"#{printed_number(s, spec_prefix)}" if s.number else ""
    return {
        "spec_section": f"{s.spec[0]} - {s.spec[1]}", "number": number, "revision": s.revision,
        "title": s.title, "type": s.type, "status": s.status,
        "responsible_contractor": s.responsible_contractor, "received_from": display(s.received_from),
        "approvers": ", ".join(display(p) for p in s.approvers),
        "ball_in_court": ", ".join(display(p) for p in s.ball_in_court),
        "issue_date": print_date(s.issue_date, order), "due_date": print_date(s.due_date, order),
        "returned_date": print_date(s.returned_date, order), "lead_time": str(s.lead_time),
        "cost_code": s.cost_code,
    }


def expected_submittal(s: Submittal, fields: Sequence[str], page: int, spec_prefix: bool) -> dict[str, Any]:
    values: dict[str, Any] = {
        "spec_section": f"{s.spec[0]} - {s.spec[1]}", "revision": s.revision, "title": s.title,
        "type": s.type, "status": s.status, "responsible_contractor": s.responsible_contractor,
        "received_from": display(s.received_from), "approvers": [display(p) for p in s.approvers],
        "ball_in_court": [display(p) for p in s.ball_in_court], "issue_date": s.issue_date.isoformat(),
        "due_date": s.due_date.isoformat() if s.due_date else None,
        "returned_date": s.returned_date.isoformat() if s.returned_date else None,
        "lead_time": s.lead_time, "cost_code": s.cost_code,
    }
    record = {f: values[f] for f in fields if f != "number"}
    shown = s.number if "number" in fields else None
    record.update({"number": shown,
                   "formatted_number": printed_number(s, spec_prefix) if shown else None,
                   "spec_section_number": s.spec[0] if shown and spec_prefix else None, "_page": page})
    if shown and "revision" not in fields:
        record["revision"] = s.revision  # read from the number's suffix
    return record


def write_submittal_log(path: Path, items: Sequence[Submittal],
                        fields: Sequence[str] = tuple(SUBMITTAL_DEFAULT), *, order: str = "mdy",
                        spec_prefix: bool = False, style: LogStyle | None = None) -> WrittenLog:
    writer = LogWriter(columns(SUBMITTAL_COLUMNS, fields), style or LogStyle("Submittals", order=order))
    expected = []
    for item in items:
        page = writer.row(submittal_cells(item, order, spec_prefix))
        expected.append(expected_submittal(item, fields, page, spec_prefix))
    writer.save(path)
    return writer.result(expected)


# --- cover sheets ---

@dataclass
class Attachment:
    name: str
    url: str


def write_cover_sheet(path: Path, item: Submittal, attachments: Sequence[Attachment], *,
                      order: str = "mdy", spec_prefix: bool = True, printed_urls: Sequence[str] = (),
                      header_link: str | None = None,
                      description: str = "Mix designs for all structural concrete, including "
                                         "podium slabs, columns and shear walls, with test reports.",
                      ) -> dict[str, Any]:
    """A submittal cover sheet (portrait) with one linked line per attachment; returns the
    metadata the importer must find."""
    doc = pymupdf.open()
    canvas = Canvas(doc, PORTRAIT)
    number = printed_number(item, spec_prefix)
    canvas.text(MARGIN, 40, "Keystone Builders, Inc.", 11, bold=True)
    canvas.text(MARGIN, 54, "Project: Riverside Tower (#1001)", 8)
    if header_link:  # e.g. "Open in Procore": not an attachment
        canvas.link(450, 40, "Open in Procore", header_link, 8)
    canvas.text(MARGIN, 84, f"Submittal #{number}: {item.title}", 13, bold=True)
    pairs = [("Spec Section", f"{item.spec[0]} - {item.spec[1]}", "Revision", item.revision),
             ("Status", item.status, "Submittal Type", item.type),
             ("Responsible Contractor", item.responsible_contractor,
              "Received From", display(item.received_from)),
             ("Issue Date", print_date(item.issue_date, order), "Due Date", print_date(item.due_date, order)),
             ("Cost Code", item.cost_code, "Lead Time", str(item.lead_time)),
             ("Ball In Court", ", ".join(display(p) for p in item.ball_in_court), "", ""),
             ("Approvers", ", ".join(display(p) for p in item.approvers), "", "")]
    y = 110.0
    for left_label, left, right_label, right in pairs:  # two label: value pairs a line, or one
        canvas.text(MARGIN, y, f"{left_label}:", 8, bold=True)
        canvas.text(MARGIN + 100, y, left, 8)
        if right_label:
            canvas.text(320, y, f"{right_label}:", 8, bold=True)
            canvas.text(420, y, right, 8)
        y += 14
    canvas.text(MARGIN, y + 6, "Description:", 8, bold=True)
    y += 20
    for text in wrap(description, PORTRAIT[0] - 2 * MARGIN - 20, 8):
        canvas.text(MARGIN + 10, y, text, 8)
        y += 11
    y += 12
    canvas.text(MARGIN, y, "Attachments", 10, bold=True)
    y += 16
    for attachment in attachments:
        if y > 740:
            canvas.text(300, 770, "Page 1", 7)
            canvas.finish()
            canvas, y = Canvas(doc, PORTRAIT), 60.0
        canvas.link(MARGIN + 10, y, attachment.name, attachment.url, 8)
        y += 12
    for url in printed_urls:  # a link written out as text, without an annotation
        canvas.text(MARGIN + 10, y, url, 8)
        y += 12
    canvas.finish()
    doc.save(path)
    return {"number": item.number, "formatted_number": number,
            "spec_section_number": item.spec[0] if spec_prefix else None, "title": item.title,
            "spec_section": f"{item.spec[0]} - {item.spec[1]}", "revision": item.revision,
            "status": item.status, "type": item.type,
            "responsible_contractor": item.responsible_contractor,
            "received_from": display(item.received_from),
            "issue_date": item.issue_date.isoformat(),
            "due_date": item.due_date.isoformat() if item.due_date else None,
            "ball_in_court": [display(p) for p in item.ball_in_court], "lead_time": item.lead_time,
            "cost_code": item.cost_code, "approvers": [display(p) for p in item.approvers],
            "description": description, "project": "Riverside Tower (#1001)"}


# --- bad input ---

def write_encrypted(path: Path) -> Path:
    doc = pymupdf.open()
    Canvas(doc, LANDSCAPE).finish()
    doc.save(path, encryption=pymupdf.mupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    return path


def write_image_only(path: Path) -> Path:
    doc = pymupdf.open()
    page = doc.new_page(width=LANDSCAPE[0], height=LANDSCAPE[1])
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 48), False)
    pix.clear_with(200)
    page.insert_image(page.rect, pixmap=pix)
    doc.save(path)
    return path


def write_letter(path: Path) -> Path:
    """A PDF with text that is not a Procore export."""
    doc = pymupdf.open()
    canvas = Canvas(doc, PORTRAIT)
    for k, text in enumerate(wrap(" ".join(SENTENCES * 3), 500, 10)):
        canvas.text(MARGIN, 72 + 13 * k, text, 10)
    canvas.finish()
    doc.save(path)
    return path


def write_text_bomb(path: Path, words: int = 400_000) -> Path:
    """One page drawing ``words`` words on top of each other: a few MB that cost MuPDF seconds
    of CPU and hundreds of MB to extract (the sandbox's limits must stop it)."""
    doc = pymupdf.open()
    canvas = Canvas(doc, LANDSCAPE)
    canvas.ops += [b"BT /helv 7 Tf 1 0 0 1 %d %d Tm (word%d x) Tj ET" % (i % 700, i % 600, i)
                   for i in range(words)]
    canvas.finish()
    doc.save(path, deflate=True)
    return path


def write_corrupt(path: Path, source: Path) -> Path:
    """The first 40% of a real PDF followed by garbage."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)] + b"\x00garbage" * 64)
    return path


# --- the benchmark's log ---

BENCH_RFIS, BENCH_PAGES = 133, 98


def write_benchmark_log(path: Path) -> WrittenLog:
    """The seed's headline case: a 98-page RFI log with questions and responses, 133 RFIs."""
    rfis = make_rfis(BENCH_RFIS, seed=7, qa=True, qa_sentences=(14, 24))
    return write_rfi_log(path, rfis, qa=True)


# --- a storage host for link tests: https on 127.0.0.1, and a canary that must stay silent ---

# A test CA and a certificate it signed for localhost / 127.0.0.1, valid 2000-2125. Test-only keys:
# clients trust TEST_CA_PEM through storage_client_context(), never the system store.
TEST_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBdjCCARygAwIBAgICEAAwCgYIKoZIzj0EAwIwITEfMB0GA1UEAwwWRVZBLTAw
IHRlc3Qgc3RvcmFnZSBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMTI1MDEwMTAwMDAw
MFowITEfMB0GA1UEAwwWRVZBLTAwIHRlc3Qgc3RvcmFnZSBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABDCYj35Wo3Y8zRW6f25OKYeIix7Q+Z+/Yzc2lo5Il1yV
lUy2mFn/gpu3Iv4/HSlfGprk2FH54xt2veg2Qgxbr5mjQjBAMA8GA1UdEwEB/wQF
MAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBRI9XE2QasOEZt9kgH+XCkz
kzjawDAKBggqhkjOPQQDAgNIADBFAiEAnO0M+J5+VSvYhS6UiSZw9ibuZxPtt7f7
N3zpN9adM4gCIDxRW+xegmTCO6rMNKwpWafEYCldWp2w5PDx+wPy+P2Y
-----END CERTIFICATE-----
"""
TEST_CERT_PEM = """-----BEGIN CERTIFICATE-----
MIIBuzCCAWCgAwIBAgICEAEwCgYIKoZIzj0EAwIwITEfMB0GA1UEAwwWRVZBLTAw
IHRlc3Qgc3RvcmFnZSBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMTI1MDEwMTAwMDAw
MFowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD
QgAEi7fgscYmoQUWieg9i/L31/R/692RTyzHmxxg24EhdcVzz1kMdnTddBxN4x0j
Hs6alA2CZeyA6rHomECkFgBFw6OBkjCBjzAaBgNVHREEEzARgglsb2NhbGhvc3SH
BH8AAAEwDAYDVR0TAQH/BAIwADAOBgNVHQ8BAf8EBAMCB4AwEwYDVR0lBAwwCgYI
KwYBBQUHAwEwHwYDVR0jBBgwFoAUSPVxNkGrDhGbfZIB/lwpM5M42sAwHQYDVR0O
BBYEFEq8336V2pWC1Wr2Ypx+/StXT+VjMAoGCCqGSM49BAMCA0kAMEYCIQDonhHB
21ib/t9a80v+Hk1tBmalTcZ9t5g8p5614wMG6gIhAMNkhxlezfeK9xfpNaYsYxUA
FAJR/O1kCTv5+DBay8eK
-----END CERTIFICATE-----
"""
TEST_KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgRxCQo1JdINPff9zP
mBF3Nw/LmKRG+Jlai/jR/yrn2Z2hRANCAASLt+CxxiahBRaJ6D2L8vfX9H/r3ZFP
LMebHGDbgSF1xXPPWQx2dN10HE3jHSMezpqUDYJl7IDqseiYQKQWAEXD
-----END PRIVATE KEY-----
"""


def storage_client_context() -> ssl.SSLContext:
    """TLS for clients of the test storage host: only the test CA is trusted."""
    return ssl.create_default_context(cadata=TEST_CA_PEM)


Route = tuple[int, dict[str, str]]  # status, headers


class StorageServer:
    """An https server on 127.0.0.1 answering ``routes`` (path -> status, headers); it records
    every request's path and headers. Use as a context manager."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                server.requests.append((self.path, dict(self.headers)))
                status, headers = server.routes.get(path, (404, {}))
                body = b"x" if 200 <= status < 300 else b"<Error>denied</Error>"
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert.write_text(TEST_CERT_PEM)
            key.write_text(TEST_KEY_PEM)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> StorageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Canary:
    """A TCP listener on 127.0.0.1 that counts connections: an SSRF target that must stay silent."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()

    def __enter__(self) -> Canary:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    """Poll until condition() holds (another thread's effect); AssertionError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
