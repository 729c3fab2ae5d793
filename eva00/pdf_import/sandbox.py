"""Parsing a PDF in a child process with page, CPU, memory and wall-clock limits.

A hostile or broken PDF may make MuPDF loop, allocate without bound or crash. The importer never
parses in its own process: it runs ``python -I -m eva00.pdf_import.worker`` in a new session,
which caps its own CPU time and address space before opening the file, and is killed (with its
whole process group) when the wall-clock limit passes. Whatever happens, the caller gets either
the parsed result or ``ParseFailed`` with one line saying why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

WORKER = (sys.executable, "-I", "-m", "eva00.pdf_import.worker")


class ParseFailed(Exception):
    """The file could not be parsed; the message is one line naming the reason."""


@dataclass(frozen=True)
class Limits:
    max_pages: int = 2000
    cpu_s: int = 60
    wall_s: float = 120.0
    memory_mb: int = 2048


def parse_in_child(kind: str, path: Path, date_format: str = "auto", limits: Limits = Limits(),
                   worker: Sequence[str] = WORKER) -> dict[str, Any]:
    """Run the worker on ``path``; its result, or ParseFailed."""
    argv = [*worker, kind, str(path), "--date-format", date_format, "--max-pages", str(limits.max_pages),
            "--cpu-s", str(limits.cpu_s), "--memory-mb", str(limits.memory_mb)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ParseFailed(f"parsing took longer than {limits.wall_s:g} s and was stopped") from None
    finally:
        _kill_group(proc)  # a grandchild left behind must not outlive the parse
    return _outcome(proc.returncode, out, err, limits)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        proc.communicate()


def _outcome(code: int, out: bytes, err: bytes, limits: Limits) -> dict[str, Any]:
    if code < 0:
        raise ParseFailed(_signal_reason(-code, limits))
    try:
        answer = orjson.loads(out.strip().splitlines()[-1]) if out.strip() else None
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and answer.get("ok") is True and code == 0:
        result: dict[str, Any] = answer["result"]
        return result
    if isinstance(answer, dict) and answer.get("ok") is False:
        raise ParseFailed(str(answer.get("error")))
    last = err.decode(errors="replace").strip().splitlines()
    if last and "MemoryError" in last[-1]:
        raise ParseFailed(f"the parser ran out of memory (limit {limits.memory_mb} MB)")
    raise ParseFailed(f"the parser failed (exit code {code}: {last[-1] if last else 'no message'})")


def _signal_reason(number: int, limits: Limits) -> str:
    if number == signal.SIGXCPU:
        return f"parsing used more than {limits.cpu_s} s of CPU time and was stopped"
    if number == signal.SIGKILL:
        return "the parser was killed (out of memory or stopped from outside)"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"the parser crashed ({name})"
