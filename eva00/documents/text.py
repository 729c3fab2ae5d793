"""The text of a PDF, page by page (in the sandboxed worker only)."""

from __future__ import annotations

from pathlib import Path

import pymupdf

from eva00.documents.mupdf import UNREADABLE, unreadable


def extract_text(path: Path, max_chars: int) -> str:
    """Every page's text in order, at most ``max_chars`` characters, NUL-free for PostgreSQL."""
    parts: list[str] = []
    length = 0
    try:
        with pymupdf.open(path, filetype="pdf") as document:
            for page in document:
                text = str(page.get_text()).replace("\x00", "")
                parts.append(text)
                length += len(text)
                if length >= max_chars:
                    break
    except UNREADABLE as exc:
        raise unreadable(exc) from None
    return "".join(parts)[:max_chars]
