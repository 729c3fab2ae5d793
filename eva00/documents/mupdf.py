"""PyMuPDF's failure modes on bad input, in one place: a file it cannot read is quarantined by the
stage that tried, never retried as if the failure were ours. Imported only inside the sandboxed
worker (`worker.py`), never by a long-lived process."""

from __future__ import annotations

import pymupdf

# What MuPDF raises on bad input: its own error classes, or RuntimeError/ValueError from the binding.
UNREADABLE = (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)

# MuPDF would print every parse error of a corrupt file to stderr; we log one line per file instead.
pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)


class Unreadable(Exception):
    """The source cannot be read or rendered: quarantine it."""


def unreadable(exc: BaseException) -> Exception:
    """What a MuPDF error means: a failed allocation under the sandbox's memory cap (MuPDF reports
    it as an ordinary error, "malloc (...) failed") is MemoryError, anything else Unreadable."""
    text = str(exc)
    if any(word in text.lower() for word in ("malloc", "calloc", "realloc", "out of memory")):
        return MemoryError(text)
    return Unreadable(f"{type(exc).__name__}: {text}")


def check_pixels(width: int, height: int, max_pixels: int, what: str = "the image") -> None:
    """Refuse an image larger than the cap before anything decodes it (a PNG of 12000 x 12000
    pixels is 137 KiB on disk and 432 MB decoded)."""
    if width * height > max_pixels:
        raise Unreadable(f"{what} is {width} x {height} pixels, more than the limit of {max_pixels}"
                         " (EVA00_IMAGE_MAX_PIXELS)")
