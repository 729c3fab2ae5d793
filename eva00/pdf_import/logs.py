"""Reading an exported log's table, page by page, into raw records (cell texts and Q&A blocks).

Page furniture (page header, repeated column header row, footer) is dropped first; then one
pass over the body lines of every page, a small state machine:

- a line starts a row when no word straddles a column edge, its key cells (number, status,
  dates) start at their columns' left edges, and: its number reads as a number; or, without a
  number, it shows a date (dates never wrap, so they are on a row's first line); or it shows the
  row's subject (title) and sits apart from the line above: a gap wider than the one between
  wrapped lines of a row, or, at the top of a page, after Q&A text, after a page with room left,
  or with text that cannot be the wrap of the row before (see ``_apart``). That last case is how
  drafts without a number are found;
- in logs with questions and responses, a line such as ``Question from Ana Ruiz (Acme) on
  01/05/2024`` opens a Q&A block of the current row, and every following line up to the next row
  is that block's text, across page breaks;
- any other line continues the current row's cells (wrapped text), across page breaks too.

Limitation: a row with neither number nor date (a draft, or any row of a log showing no number
column) that starts a page right after a page filled to the bottom, whose text could be the wrap
of the row before, is read as that wrap: nothing on the page tells the two apart.

The kind-specific modules turn raw records into typed records once the whole file's date order
is known.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eva00.pdf_import import dates
from eva00.pdf_import.document import BadInput, PageText
from eva00.pdf_import.layout import (
    Table,
    Vocabulary,
    find_header,
    furniture_key,
    repeated_footers,
    strip_footer,
    strip_top,
    text_of,
)
from eva00.pdf_import.words import Line, Word

# Room a word needs beside the last word of a cell line besides its own width (a space, the
# cell's right padding, slack), as a share of the line height: more than any real layout needs.
WRAP_ROOM_RATIO = 1.5
# Two rows are apart by more than the page's usual gap between lines (most lines are wrapped
# lines of one row) plus this share of a line's height.
ROW_GAP_RATIO = 0.15

QA_FIRST_WORDS = frozenset({"Official", "Question", "Response", "Answer", "Reply"})
QA_HEADING = re.compile(
    r"^(?P<official>Official\s+)?(?P<kind>Question|Response|Answer|Reply)(?:\s+#?\d+)?\s+(?:from|by)\s+"
    rf"(?P<who>.+?)\s+(?:on|-|\u2013|\u2014)\s+(?P<date>{dates.DATE_IN_TEXT})"
    r"(?P<flag>\s*[\[(]?Official(?:\s+Response)?[\])]?)?\s*$")


@dataclass
class QaBlock:
    kind: str  # "question" | "response"
    who: str
    date: str
    official: bool
    page: int
    body: list[str] = field(default_factory=list)


@dataclass
class RawRecord:
    page: int
    shown: tuple[str, ...]  # the fields of the table this row belongs to (empty cells included)
    cells: dict[str, list[str]]
    qa: list[QaBlock] = field(default_factory=list)
    ends: dict[str, float] = field(default_factory=dict)  # right end of each cell's last line

    def text(self, name: str) -> str | None:
        parts = self.cells.get(name)
        return " ".join(parts) if parts else None

    def add(self, cells: dict[str, list[Word]]) -> None:
        for name, words in cells.items():
            self.cells.setdefault(name, []).append(text_of(words))
            self.ends[name] = words[-1][2]


class LogReader:
    def __init__(self, vocab: Vocabulary, number_ok: Callable[[str], bool], title: str,
                 with_qa: bool) -> None:
        self.vocab, self.number_ok, self.title, self.with_qa = vocab, number_ok, title, with_qa
        self.date_fields = {f for f, spec in vocab.specs.items() if spec.kind == "date"}
        self.key_fields = self.date_fields | {"number", "status"}
        self.records: list[RawRecord] = []
        self.previous: Line | None = None  # the previous body line on this page
        self.room_left = True  # the page before this one ended above the lowest body line
        self.row_gap: float | None = None  # a wider gap above a line starts a row (see _row_gap)
        self.page_header: set[tuple[int, str]] = set()  # lines above the table header

    def read(self, pages: Sequence[PageText]) -> list[RawRecord]:
        bodies = self._bodies(pages)
        if not bodies:
            raise BadInput(f"no {self.title} table header found (is this a Procore {self.title} export?)")
        self.row_gap = _row_gap([body for _table, body in bodies])
        bottom = max((body[-1].y1 for _table, body in bodies if body), default=0.0)
        for table, body in bodies:
            self.previous = None
            for line in body:
                self._line(table, line)
                self.previous = line
            # A page that ended a line or more above the lowest body line of the file had room
            # left: whatever starts the next page is a new row, not the rest of one.
            self.room_left = self.previous is None or bottom - self.previous.y1 > self.previous.height
        return self.records

    def _bodies(self, pages: Sequence[PageText]) -> list[tuple[Table, list[Line]]]:
        """Each page's table and the lines below its header, without page furniture."""
        repeated = repeated_footers([p.lines for p in pages], [p.height for p in pages])
        bodies = []
        table: Table | None = None
        for page in pages:
            lines = strip_footer(page.lines, page.height, repeated)
            found = find_header(lines, self.vocab, table)
            if found:
                start, table = found
                above = lines[:start - table.header_lines]
                self.page_header.update(furniture_key(line) for line in above)
                bodies.append((table, lines[start:]))
            elif table is not None:
                bodies.append((table, strip_top(lines, self.page_header)))
            # else: a cover page or summary before the table starts
        return bodies

    def _line(self, table: Table, line: Line) -> None:
        current = self.records[-1] if self.records else None
        if current and current.qa and not table.at_column_edge(line.x0):
            self._qa_line(current, line)  # Q&A text (most of a Q&A log): no row starts off an edge
            return
        cells = table.split(line)
        # Every row's first line shows its subject (title): no gap makes a row without it.
        gap = self.vocab.required in cells and self._apart(table, line, cells, current)
        if self._starts_row(table, line, cells, gap):
            self.records.append(RawRecord(line.page, tuple(c.field for c in table.columns), {}))
            self.records[-1].add(cells)
        elif current and (current.qa or (self.with_qa and QA_HEADING.match(line.text))):
            self._qa_line(current, line)
        elif current:
            current.add(cells)
        # else: text between the header and the first row (a grouping title): not a record's

    def _apart(self, table: Table, line: Line, cells: dict[str, list[Word]],
               current: RawRecord | None) -> bool:
        """Whether the line sits apart from the row above like a new row: a gap wider than
        wrapped lines leave, or, at the top of a page, a line after Q&A text or after a page
        that had room left, or text that could not be the wrap of the row before the break (its
        cell was empty, or the word would have fit on its last line)."""
        if self.previous is not None:
            return self.row_gap is not None and line.y0 - self.previous.y1 > self.row_gap
        if current is None or current.qa or self.room_left:
            return True
        room = WRAP_ROOM_RATIO * line.height  # a space, the cell's padding and some slack
        for name, words in cells.items():
            right = table.right_edge(name)
            if name not in current.ends or (
                    right is not None and current.ends[name] + room + words[0][2] - words[0][0] < right):
                return True
        return False

    def _qa_line(self, current: RawRecord, line: Line) -> None:
        heading = QA_HEADING.match(line.text) if line.words[0][4] in QA_FIRST_WORDS else None
        if heading:
            current.qa.append(QaBlock("question" if heading["kind"] == "Question" else "response",
                                      heading["who"], heading["date"],
                                      bool(heading["official"] or heading["flag"]), line.page))
        else:
            current.qa[-1].body.append(line.text)

    def _starts_row(self, table: Table, line: Line, cells: dict[str, list[Word]], gap: bool) -> bool:
        keys = [f for f in cells if f in self.key_fields]
        if table.straddles(line) or not table.aligned(cells, keys):
            return False
        if "number" in cells:
            return self.number_ok(text_of(cells["number"]))
        dated = [f for f in cells if f in self.date_fields]
        if any(not dates.is_date(text_of(cells[f])) for f in dated):
            return False
        if dated:
            return True  # a date never wraps: it is on its row's first line
        if "status" in cells:  # a wrapped status continues close below, without a date
            return gap
        if "status" in table.fields:
            return False  # every row shows its status: this line continues the one above
        return gap and table.aligned(cells, cells)


def _row_gap(bodies: Sequence[Sequence[Line]]) -> float | None:
    """The gap above which a line starts a new row: a little more than the smallest gap that
    recurs between lines (wrapped lines of one row, lines of Q&A text). None when no gap
    recurs enough to tell (a short log of single-line rows)."""
    gaps: Counter[float] = Counter(round((b.y0 - a.y1) * 4) / 4 for lines in bodies
                                   for a, b in itertools.pairwise(lines))
    enough = max(3, 0.05 * sum(gaps.values()))
    recurring = [gap for gap, n in gaps.items() if n >= enough]
    heights = sorted(line.height for lines in bodies for line in lines)
    if not recurring:
        return None
    return min(recurring) + ROW_GAP_RATIO * heights[len(heights) // 2]
