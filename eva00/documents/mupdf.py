"""PyMuPDF's failure modes on bad input, in one place: a file it cannot read is quarantined by the
stage that tried, never retried as if the failure were ours."""

from __future__ import annotations

import pymupdf

# What MuPDF raises on bad input: its own error classes, or RuntimeError/ValueError from the binding.
UNREADABLE = (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)

# MuPDF would print every parse error of a corrupt file to stderr; we log one line per file instead.
pymupdf.TOOLS.mupdf_display_errors(False)


class Unreadable(Exception):
    """The source cannot be read or rendered: quarantine it."""
