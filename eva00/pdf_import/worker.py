"""The sandboxed parser: ``python -m eva00.pdf_import.worker KIND FILE [options]``.

Runs in a child process started by `sandbox.py`, so a hostile PDF can at worst kill this process.
It first caps its own CPU time and address space (``resource.setrlimit``), then opens the file
with PyMuPDF, parses it and writes one JSON object to stdout: ``{"ok": true, "result": {...}}`` or
``{"ok": false, "error": "one line"}`` (exit code 2). Nothing else is ever written to stdout.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2


def apply_limits(cpu_s: int, memory_mb: int) -> None:
    """CPU seconds (SIGXCPU when spent) and address space (MemoryError beyond it), never above
    limits the process already has."""
    _cap(resource.RLIMIT_CPU, cpu_s, cpu_s + 2)
    _cap(resource.RLIMIT_AS, memory_mb * 1024 * 1024, memory_mb * 1024 * 1024)


def _cap(which: int, soft: int, hard: int) -> None:
    _, current = resource.getrlimit(which)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


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
    parser.add_argument("--cpu-s", type=int, default=60)
    parser.add_argument("--memory-mb", type=int, default=2048)
    args = parser.parse_args(argv)

    import orjson
    import pymupdf  # noqa: F401  (imported before the address space is capped)

    from eva00.pdf_import.document import BadInput

    # Written without allocating once memory has run out.
    out_of_memory = orjson.dumps({"ok": False, "error": "the parser ran out of memory "
                                  f"(limit {args.memory_mb} MB)"}) + b"\n"
    apply_limits(args.cpu_s, args.memory_mb)
    try:
        result = parse_file(args.kind, args.file, args.date_format, args.max_pages)
    except MemoryError:
        os.write(1, out_of_memory)
        return EXIT_BAD_INPUT
    except BadInput as exc:
        sys.stdout.buffer.write(orjson.dumps({"ok": False, "error": str(exc)}) + b"\n")
        return EXIT_BAD_INPUT
    sys.stdout.buffer.write(orjson.dumps({"ok": True, "result": result}) + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
