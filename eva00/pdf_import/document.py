"""Opening a PDF for import and refusing what cannot be a Procore export, with the reason.

Every refusal is a ``BadInput`` whose message is one line a person can act on: empty file, not a
PDF, damaged (a file MuPDF has to repair is refused too: a truncated export would otherwise be
half imported), encrypted, more pages than the limit, no text layer (a scan). Runs in the
sandboxed worker; the parent only ever sees the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eva00.pdf_import.words import TEXT_FLAGS, Line, group_lines


class BadInput(Exception):
    """The file cannot be imported; the message says why in one line."""


@dataclass(frozen=True)
class PageText:
    number: int  # 1-based
    width: float
    height: float
    lines: list[Line]


def open_pdf(path: Path, max_pages: int) -> Any:
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadInput(f"cannot read the file ({exc.strerror or exc})") from None
    if size == 0:
        raise BadInput("the file is empty (0 bytes)")
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:  # MuPDF raises several types for damaged files
        if _out_of_memory(exc):
            raise MemoryError(str(exc)) from None
        raise BadInput(f"not a readable PDF ({_first_line(exc)})") from None
    if doc.needs_pass or doc.is_encrypted:
        raise BadInput("the PDF is encrypted (export the log again without a password)")
    if doc.is_repaired:  # truncated or damaged: what MuPDF recovers may silently lack pages or rows
        raise BadInput("the PDF is damaged (its structure had to be repaired); export it again")
    if doc.page_count == 0:
        raise BadInput("the PDF has no pages")
    if doc.page_count > max_pages:
        raise BadInput(f"the PDF has {doc.page_count} pages, more than the limit of {max_pages}"
                       " (--max-pages)")
    return doc


def read_pages(doc: Any) -> list[PageText]:
    """Every page's lines; a document without any text is a scan, not an export."""
    pages = []
    try:
        for index, page in enumerate(doc):
            words = page.get_text("words", sort=False, flags=TEXT_FLAGS)  # never blank words
            rect = page.rect
            pages.append(PageText(index + 1, rect.width, rect.height, group_lines(words, index + 1)))
    except Exception as exc:  # MuPDF raises several types for damaged content
        if _out_of_memory(exc):
            raise MemoryError(str(exc)) from None
        raise BadInput(f"the PDF is damaged ({_first_line(exc)})") from None
    if not any(page.lines for page in pages):
        raise BadInput("the PDF has no text layer (image-only or scanned); export it from Procore")
    return pages


def _out_of_memory(exc: BaseException) -> bool:
    """MuPDF reports a failed allocation as an ordinary error ("calloc (4104 x 1 bytes) failed")."""
    text = str(exc).lower()
    return any(word in text for word in ("malloc", "calloc", "realloc", "out of memory"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
