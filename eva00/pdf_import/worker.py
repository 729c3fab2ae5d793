"""The sandboxed parser: ``python -m eva00.pdf_import.worker KIND FILE [options]``.

Runs in a child process started by `sandbox.py`, so a hostile PDF can at worst kill this process.
It first caps its own CPU time and address space (`eva00/documents/child.py`, shared with the
stages' document worker), then opens the file with PyMuPDF, parses it and writes one JSON object
to stdout: ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "one line"}`` (exit code
2). Nothing else is ever written to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from eva00.documents.child import add_limit_arguments, serve
from eva00.documents.sandbox import Limits, out_of_memory
from eva00.pdf_import.sandbox import PARSING


def parse_file(kind: str, path: Path, date_format: str, max_pages: int) -> dict[str, Any]:
    from eva00.pdf_import import cover_sheet, dates, document, parse

    doc = document.open_pdf(path, max_pages)
    pages = document.read_pages(doc)
    order = dates.DateFormat(date_format)
    if kind == "cover_sheet":
        links = [page.get_links() for page in doc]
        for page_links in links:
            for link in page_links:
                link["from"] = tuple(link["from"])
        return cover_sheet.parse_cover_sheet(pages, links, order, path.name)
    return parse.parse_log(kind, pages, order, path.name)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="eva00.pdf_import.worker")
    parser.add_argument("kind", choices=("rfi", "submittal", "cover_sheet"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--date-format", default="auto", choices=("auto", "mdy", "dmy"))
    parser.add_argument("--max-pages", type=int, default=2000)
    add_limit_arguments(parser)
    args = parser.parse_args(argv)

    import pymupdf  # noqa: F401  (imported before the address space is capped)

    from eva00.pdf_import.document import BadInput

    oom = out_of_memory(Limits(memory_bytes=args.memory_bytes), PARSING)
    return serve(lambda: parse_file(args.kind, args.file, args.date_format, args.max_pages), args, oom,
                 (BadInput,))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
