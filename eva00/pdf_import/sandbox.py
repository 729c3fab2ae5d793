"""Parsing a PDF in the documents sandbox (`eva00/documents/sandbox.py`): page, CPU, memory and
wall-clock limits.

A hostile or broken PDF may make MuPDF loop, allocate without bound or crash. The importer never
parses in its own process: it runs `worker.py` in the same child process sandbox as the stages'
thumbnails and text, and gets either the parsed result or ``ParseFailed`` with one line saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eva00.documents import sandbox

WORKER = sandbox.worker_command("eva00.pdf_import.worker")
PARSING = sandbox.Work("parsing", "the parser")

# The documents sandbox's failure, under the importer's name.
ParseFailed = sandbox.SandboxFailed


@dataclass(frozen=True)
class Limits:
    max_pages: int = 2000
    cpu_s: int = 60
    wall_s: float = 120.0
    memory_mb: int = 2048

    def sandbox(self) -> sandbox.Limits:
        return sandbox.Limits(cpu_s=self.cpu_s, wall_s=self.wall_s, memory_bytes=self.memory_mb * sandbox.MIB)


def parse_in_child(kind: str, path: Path, date_format: str = "auto", limits: Limits = Limits(),
                   worker: Sequence[str] = WORKER) -> dict[str, Any]:
    """Run the worker on ``path``; its result, or ParseFailed."""
    args = [kind, str(path), "--date-format", date_format, "--max-pages", str(limits.max_pages)]
    try:
        return sandbox.run_in_child(worker, args, limits.sandbox(), PARSING)
    except sandbox.ChildUnavailable as exc:
        raise ParseFailed(str(exc)) from None
