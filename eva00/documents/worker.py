"""The sandboxed document worker: ``python -m eva00.documents.worker thumbnail|text FILE [options]``.

Runs in a child process started by `isolated.py` (through `sandbox.py`), one per file, so a
hostile PDF or image can at worst kill this process: limits first (`child.py`), then PyMuPDF.
The answer is one JSON line: ``{"png": base64}`` for a thumbnail, ``{"text": ...}`` for text.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path
from typing import Any

from eva00.documents.child import add_limit_arguments, serve
from eva00.documents.isolated import EXTRACTING, RENDERING
from eva00.documents.sandbox import Limits, out_of_memory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eva00.documents.worker")
    tasks = parser.add_subparsers(dest="task", required=True)
    thumbnail = tasks.add_parser("thumbnail")
    thumbnail.add_argument("file", type=Path)
    thumbnail.add_argument("--filetype", required=True)
    thumbnail.add_argument("--max-px", type=int, required=True)
    thumbnail.add_argument("--max-pixels", type=int, required=True)
    text = tasks.add_parser("text")
    text.add_argument("file", type=Path)
    text.add_argument("--max-chars", type=int, required=True)
    for task in (thumbnail, text):
        add_limit_arguments(task)
    return parser


def _work(args: argparse.Namespace) -> dict[str, Any]:
    if args.task == "thumbnail":
        from eva00.documents.thumbnail import render_thumbnail

        png = render_thumbnail(args.file, args.filetype, args.max_px, args.max_pixels)
        return {"png": base64.b64encode(png).decode()}
    from eva00.documents.text import extract_text

    return {"text": extract_text(args.file, args.max_chars)}


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # Imported before the address space is capped: the library itself is not the file's cost.
    from eva00.documents.mupdf import Unreadable

    work = RENDERING if args.task == "thumbnail" else EXTRACTING
    oom = out_of_memory(Limits(memory_bytes=args.memory_bytes), work)
    return serve(lambda: _work(args), args, oom, (Unreadable,))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
