"""Table layout of an exported log: the header row, its columns, and page furniture to drop.

A log's columns follow the user's list view, so nothing is at a fixed position: the header row is
found by its labels (any order, any subset, labels wrapped over two lines), and each column spans
from its label's left edge to the next label's. Cells are left-aligned under their labels and wrap
inside their column, so a word that straddles a column edge belongs to prose (a Q&A text), never
to a table cell. The page header is what sits above the column header row (and is dropped by
its text on pages where the row is not repeated); footers are recognised by recurring on the
pages' bottoms, by their wording (``Page 3 of 98``) and by the gap that separates them from the
body.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from eva00.pdf_import.words import Line, Word

# How far a cell's first word may sit from its column's left edge (points).
ALIGN_TOL = 2.5
# Words further apart than this share of the line height start a new header label.
LABEL_GAP_RATIO = 0.5
# Lines of the header row searched for at the top of each page.
HEADER_SEARCH_LINES = 30
# Below this share of the page height a line may be part of the footer.
BOTTOM_BAND = 0.86
FOOTER_RE = re.compile(r"^(page \d+( of \d+)?|\d+ of \d+|printed (on|by)\b.*|generated (on|by)\b.*)$", re.I)


@dataclass(frozen=True)
class ColumnSpec:
    field: str
    labels: tuple[str, ...]
    kind: str = "text"  # text, people, date, impact_days, impact_cost, bool, int


def norm_label(text: str) -> str:
    return " ".join(text.lower().replace(":", " ").replace(".", " ").split()) or text.strip()


class Vocabulary:
    """The column labels one kind of log may print, each mapped to a field."""

    def __init__(self, specs: Iterable[ColumnSpec], required: str) -> None:
        self.specs = {spec.field: spec for spec in specs}
        self.by_label = {norm_label(label): spec for spec in self.specs.values() for label in spec.labels}
        self.max_words = max(len(label.split()) for label in self.by_label)
        self.required = required

    def spec(self, field: str) -> ColumnSpec:
        return self.specs.get(field) or ColumnSpec(field, (), "text")


@dataclass(frozen=True)
class Column:
    field: str  # a vocabulary field, or "extra:<label>" for a column this importer does not know
    label: str
    x0: float


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    signature: str  # the header's text, to recognise the repeated header on later pages
    header_lines: int

    @cached_property
    def fields(self) -> set[str]:
        return {c.field for c in self.columns}

    @cached_property
    def _starts(self) -> list[float]:
        return [c.x0 - ALIGN_TOL for c in self.columns]

    def right_edge(self, name: str) -> float | None:
        """Where a column's text must end (the next column's edge); None for the last column."""
        for column, following in itertools.pairwise(self.columns):
            if column.field == name:
                return following.x0 - ALIGN_TOL
        return None

    def at_column_edge(self, x: float) -> bool:
        """True when x is a column's left edge, where every table cell starts."""
        index = bisect.bisect_right(self._starts, x + ALIGN_TOL)
        return index > 0 and x - self.columns[index - 1].x0 <= ALIGN_TOL

    def split(self, line: Line) -> dict[str, list[Word]]:
        """Each column's words on this line (columns without words are absent)."""
        starts = self._starts
        cells: dict[str, list[Word]] = {}
        for word in line.words:
            index = max(bisect.bisect_right(starts, word[0]) - 1, 0)
            cells.setdefault(self.columns[index].field, []).append(word)
        return cells

    def straddles(self, line: Line) -> bool:
        """True when a word crosses a column edge: prose, not table cells."""
        edges = self._starts[1:]
        for word in line.words:
            index = bisect.bisect_right(edges, word[0])
            if index < len(edges) and word[2] > edges[index] + ALIGN_TOL:
                return True
        return False

    def aligned(self, cells: Mapping[str, Sequence[Word]], fields: Iterable[str]) -> bool:
        """Every given cell starts at its column's left edge (cells are left-aligned)."""
        return all(abs(cells[f][0][0] - self._lefts[f]) <= ALIGN_TOL for f in fields if f in cells)

    @cached_property
    def _lefts(self) -> dict[str, float]:
        return {c.field: c.x0 for c in self.columns}


def text_of(words: Sequence[Word]) -> str:
    return " ".join(w[4] for w in words)


# --- the header row ---

def _phrases(words: Sequence[Word], gap: float) -> list[list[Word]]:
    groups: list[list[Word]] = []
    for word in words:
        if groups and word[0] - groups[-1][-1][2] <= gap:
            groups[-1].append(word)
        else:
            groups.append([word])
    return groups


Token = tuple[str, float]  # a header word and its left edge


def _segment(tokens: Sequence[Token], vocab: Vocabulary) -> list[Column]:
    """Longest known labels first; unknown words between them form one extra column."""
    columns: list[Column] = []
    unknown: list[Token] = []

    def flush() -> None:
        if unknown:
            label = " ".join(t for t, _ in unknown)
            columns.append(Column("extra:" + label, label, unknown[0][1]))
            unknown.clear()

    i = 0
    while i < len(tokens):
        for j in range(min(len(tokens), i + vocab.max_words), i, -1):
            label = " ".join(t for t, _ in tokens[i:j])
            spec = vocab.by_label.get(norm_label(label))
            if spec:
                flush()
                columns.append(Column(spec.field, label, tokens[i][1]))
                i = j
                break
        else:
            unknown.append(tokens[i])
            i += 1
    flush()
    return columns


def _columns(lines: Sequence[Line], vocab: Vocabulary) -> tuple[list[Column], int]:
    """Header labels of one or two lines; the second line's words join the label above them."""
    gap = LABEL_GAP_RATIO * lines[0].height
    groups: list[list[Token]] = [[(w[4], w[0]) for w in g] for g in _phrases(lines[0].words, gap)]
    for extra in lines[1:]:
        for phrase in _phrases(extra.words, gap):
            x0 = phrase[0][0]
            tokens = [(w[4], x0) for w in phrase]
            home = next((g for g in groups if any(abs(x - x0) <= ALIGN_TOL for _, x in g)), None)
            if home is None:
                groups.append(tokens)
            else:
                home += [(t, home[0][1]) for t, _ in tokens]
    return [column for group in groups for column in _segment(group, vocab)], len(groups)


def _score(columns: Sequence[Column], groups: int, vocab: Vocabulary) -> int:
    """How much a band reads like this vocabulary's header (0: not at all). A header has the
    required label, at least three known labels (or the number and the required one), no label
    twice, no more unknown than known labels, and at least two runs of words apart: a sentence
    mentioning "status" and "subject" is one run."""
    known = [c for c in columns if not c.field.startswith("extra:")]
    fields = {c.field for c in known}
    enough = len(fields) >= 3 or fields == {vocab.required, "number"}
    unknown = len(columns) - len(known)
    if vocab.required not in fields or not enough or len(fields) != len(known) or unknown > len(known) \
            or groups < 2:
        return 0
    return len(known) * 2 - unknown


def find_header(lines: Sequence[Line], vocab: Vocabulary,
                known: Table | None = None) -> tuple[int, Table] | None:
    """(index of the first line after the header, table) for the header among the top lines."""
    for i, line in enumerate(lines[:HEADER_SEARCH_LINES]):
        if known is not None and line.text == known.signature.split("\n")[0]:
            return i + known.header_lines, known
    best: tuple[int, int, Table] | None = None
    for i, line in enumerate(lines[:HEADER_SEARCH_LINES]):
        if not any(norm_label(w[4]) in vocab.by_label for w in line.words):
            continue
        for count in (1, 2):
            band = lines[i:i + count]
            if count == 2 and (len(band) < 2 or band[1].y0 - line.y1 > line.height):
                continue
            columns, groups = _columns(band, vocab)
            score = _score(columns, groups, vocab)
            if score and (best is None or score > best[0]):
                columns.sort(key=lambda c: c.x0)
                signature = "\n".join(b.text for b in band)
                best = (score, i + count, Table(tuple(columns), signature, count))
    return (best[1], best[2]) if best else None


# --- page furniture ---

def furniture_key(line: Line) -> tuple[int, str]:
    return round(line.y0), re.sub(r"\d+", "#", line.text)


def repeated_footers(pages: Sequence[Sequence[Line]], heights: Sequence[float]) -> set[tuple[int, str]]:
    """Keys (position, text with digits masked) of bottom-band lines that recur on at least half
    of the pages (and on three, or on every page of a shorter file)."""
    if len(pages) < 2:
        return set()
    counts: Counter[tuple[int, str]] = Counter()
    for lines, height in zip(pages, heights, strict=True):
        counts.update({furniture_key(line) for line in lines if line.y0 > BOTTOM_BAND * height})
    return {key for key, n in counts.items() if n >= min(len(pages), max(3, len(pages) / 2))}


def strip_footer(lines: Sequence[Line], height: float, repeated: set[tuple[int, str]]) -> list[Line]:
    """The page without its footer: bottom-band lines that recur, read like a footer, or sit
    apart from the body by a wide gap (and everything below them)."""
    typical = sorted(line.height for line in lines)[len(lines) // 2] if lines else 0.0
    for i, line in enumerate(lines):
        if line.y0 <= BOTTOM_BAND * height:
            continue
        gap = line.y0 - lines[i - 1].y1 if i else height
        if furniture_key(line) in repeated or FOOTER_RE.match(line.text) or gap > 2.5 * typical:
            return list(lines[:i])
    return list(lines)


def strip_top(lines: Sequence[Line], page_header: set[tuple[int, str]]) -> list[Line]:
    """A page without a repeated table header: drop the page header seen above the table header
    on earlier pages (``page_header``: their furniture keys)."""
    start = 0
    while start < len(lines) and furniture_key(lines[start]) in page_header:
        start += 1
    return list(lines[start:])
