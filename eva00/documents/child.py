"""The child's side of the sandbox (`sandbox.py`): limits first, then the work, then one answer.

A worker module calls ``serve`` with its work. The child caps its own CPU time and address space
(``resource.setrlimit``, never above limits it already has) before it touches the file, then
writes one JSON object to stdout: ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error":
"one line"}`` (exit code 2). Nothing else is ever written to stdout. Running out of memory under
the cap is answered without allocating.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any

import orjson

EXIT_BAD_INPUT = 2


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``Limits.argv()`` passes."""
    parser.add_argument("--cpu-s", type=int, default=60)
    parser.add_argument("--memory-bytes", type=int, default=2048 * 1024 * 1024)
    parser.add_argument("--wall-s", type=float, default=120.0)


def apply_limits(cpu_s: int, memory_bytes: int, wall_s: float) -> None:
    """CPU seconds (SIGXCPU when spent), address space (MemoryError beyond it) and, a little after
    the parent's own deadline, SIGALRM: a child blocked without using CPU dies by itself even if
    its parent was killed before it could kill the child (the child runs in a session of its own)."""
    _cap(resource.RLIMIT_CPU, cpu_s, cpu_s + 2)
    _cap(resource.RLIMIT_AS, memory_bytes, memory_bytes)
    signal.alarm(math.ceil(wall_s) + 2)


def _cap(which: int, soft: int, hard: int) -> None:
    _, current = resource.getrlimit(which)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(which, (soft, hard))


def serve(work: Callable[[], dict[str, Any]], args: argparse.Namespace, out_of_memory: str,
          bad_input: tuple[type[BaseException], ...]) -> int:
    """Apply the limits in ``args``, run ``work``, answer on stdout; the exit code."""
    # Written without allocating once memory has run out.
    no_memory = orjson.dumps({"ok": False, "error": out_of_memory}) + b"\n"
    apply_limits(args.cpu_s, args.memory_bytes, args.wall_s)
    try:
        result = work()
    except MemoryError:
        os.write(1, no_memory)
        return EXIT_BAD_INPUT
    except bad_input as exc:
        sys.stdout.buffer.write(orjson.dumps({"ok": False, "error": _one_line(exc)}) + b"\n")
        return EXIT_BAD_INPUT
    sys.stdout.buffer.write(orjson.dumps({"ok": True, "result": result}) + b"\n")
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
