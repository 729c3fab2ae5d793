"""Words of a PDF page grouped into visual lines, the only text primitive the parsers use.

PyMuPDF's ``page.get_text("words")`` gives every word with its box in reading order of the content
stream, which says nothing about visual lines: a table row is drawn cell by cell. Words are grouped
here by the vertical centre of their boxes, then sorted left to right. Words stay the plain tuples
PyMuPDF returns (x0, y0, x1, y1, text, block, line, word): a 100-page log has ~100k of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Word = tuple[float, float, float, float, str, int, int, int]

# PyMuPDF's TEXT_MEDIABOX_CLIP (64) only: text outside the page is ignored, ligatures are
# expanded (no TEXT_PRESERVE_LIGATURES), runs of spaces need not be kept (words split anyway).
TEXT_FLAGS = 64
# Two words share a line when their vertical centres differ by less than this share of the height.
SAME_LINE_RATIO = 0.4


@dataclass(slots=True)
class Line:
    page: int  # 1-based
    y0: float
    y1: float
    words: list[Word] = field(default_factory=list)
    merged: bool = False  # words of several PyMuPDF lines: sorted left to right once grouped
    _text: str | None = None

    @property
    def x0(self) -> float:
        return self.words[0][0]

    @property
    def x1(self) -> float:
        return self.words[-1][2]

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = " ".join(w[4] for w in self.words)
        return self._text


def group_lines(words: Sequence[Word], page: int) -> list[Line]:
    """Words -> lines, top to bottom, each line's words left to right.

    PyMuPDF already numbers words by (block, line); its lines are only joined here when they
    share a vertical centre, which is ~20x fewer comparisons than sorting every word.
    """
    runs: list[list[Word]] = []
    key = None
    for word in words:
        if (word[5], word[6]) != key:
            key = (word[5], word[6])
            runs.append([])
        runs[-1].append(word)
    runs.sort(key=lambda run: run[0][1] + run[0][3])
    lines: list[Line] = []
    centre = -1e9
    for run in runs:
        first = run[0]
        mid = (first[1] + first[3]) / 2
        if lines and abs(mid - centre) <= SAME_LINE_RATIO * (first[3] - first[1]):
            line = lines[-1]
            line.words += run
            line.y0, line.y1 = min(line.y0, first[1]), max(line.y1, first[3])
            line.merged = True
        else:
            lines.append(Line(page, first[1], first[3], run))
            centre = mid
    for line in lines:
        if line.merged:
            line.words.sort(key=lambda w: w[0])
    return lines
