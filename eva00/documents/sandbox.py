"""Running PyMuPDF on an untrusted file in a child process with CPU, memory and wall-clock limits.

A hostile or broken PDF or image may make MuPDF loop, allocate without bound or crash, and MuPDF
runs native code with whatever the process can reach. So no long-lived process opens an untrusted
document itself: it runs a worker module (``python -I``, this checkout's code) in a new session,
one child per file; the child caps its own CPU time and address space (`child.py`) before it
opens the file, and is killed with its whole process group when the wall-clock limit passes.
Whatever happens, the caller gets either the worker's JSON result or ``SandboxFailed`` with one
line saying why; the file is to blame, never the caller (it quarantines the file and goes on).

The child's own peak memory is not the caller's: ``resource.getrusage(RUSAGE_CHILDREN)`` in the
caller sees it once the child has been waited for.
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

# This checkout, first on the child's path: the child runs the same code as its parent even when
# another checkout of eva00 is installed in the interpreter (worktrees, tests).
_ROOT = str(Path(__file__).resolve().parents[2])
MIB = 1024 * 1024
# The child's whole environment: none of the parent's (DATABASE_URL, Redis and Procore secrets
# must not be one MuPDF bug away). No descriptor is inherited either (close_fds).
CHILD_ENV = {"PATH": os.defpath, "LC_ALL": "C.UTF-8"}


def worker_command(module: str) -> tuple[str, ...]:
    """``python -I`` (no PYTHON* variables, no user site, no current directory) running
    ``module`` as ``__main__`` from this checkout; the worker's own arguments follow."""
    boot = (f"import runpy, sys; sys.path.insert(0, {_ROOT!r});"
            f" runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    return (sys.executable, "-I", "-c", boot)


class SandboxFailed(Exception):
    """The file could not be processed; the message is one line naming the reason."""


class ChildUnavailable(OSError):
    """The child could not be started at all: try again later, the file is not to blame."""


@dataclass(frozen=True)
class Limits:
    """Per file: CPU seconds (SIGXCPU), address space (MemoryError beyond it), wall-clock seconds
    (the parent kills the child's process group; the child also sets an alarm of its own)."""

    cpu_s: int = 60
    wall_s: float = 120.0
    memory_bytes: int = 2048 * MIB

    def argv(self) -> list[str]:
        """How the worker is told (it applies them to itself; see child.py)."""
        return ["--cpu-s", str(self.cpu_s), "--memory-bytes", str(self.memory_bytes),
                "--wall-s", str(self.wall_s)]


@dataclass(frozen=True)
class Work:
    """What the child does, for messages: ("parsing", "the parser")."""

    activity: str
    actor: str


def run_in_child(worker: Sequence[str], args: Sequence[str], limits: Limits, work: Work) -> dict[str, Any]:
    """Run ``worker`` with ``args`` and the limits; its result, or SandboxFailed."""
    try:
        proc = subprocess.Popen([*worker, *args, *limits.argv()], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CHILD_ENV,
                                close_fds=True, start_new_session=True)
    except OSError as exc:  # no process to be had (fork refused): the machine's fault, not the file's
        raise ChildUnavailable(f"cannot start {work.actor}: {exc}") from exc
    try:
        out, err = proc.communicate(timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise SandboxFailed(f"{work.activity} took longer than {limits.wall_s:g} s and was stopped") from None
    finally:
        _kill_group(proc)  # a grandchild left behind must not outlive the file
    return _outcome(proc.returncode, out, err, limits, work)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        proc.communicate()


def _outcome(code: int, out: bytes, err: bytes, limits: Limits, work: Work) -> dict[str, Any]:
    if code < 0:
        raise SandboxFailed(_signal_reason(-code, limits, work))
    try:
        answer = orjson.loads(out.strip().splitlines()[-1]) if out.strip() else None
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and answer.get("ok") is True and code == 0:
        result: dict[str, Any] = answer["result"]
        return result
    if isinstance(answer, dict) and answer.get("ok") is False:
        raise SandboxFailed(str(answer.get("error")))
    last = err.decode(errors="replace").strip().splitlines()
    if last and "MemoryError" in last[-1]:
        raise SandboxFailed(out_of_memory(limits, work))
    raise SandboxFailed(f"{work.actor} failed (exit code {code}: {last[-1] if last else 'no message'})")


def out_of_memory(limits: Limits, work: Work) -> str:
    return f"{work.actor} ran out of memory (limit {limits.memory_bytes // MIB} MB)"


def _signal_reason(number: int, limits: Limits, work: Work) -> str:
    if number == signal.SIGXCPU:
        return f"{work.activity} used more than {limits.cpu_s} s of CPU time and was stopped"
    if number == signal.SIGALRM:  # the parent was gone or late: the child's own deadline
        return f"{work.activity} took longer than {limits.wall_s:g} s and was stopped"
    if number == signal.SIGKILL:
        return f"{work.actor} was killed (out of memory or stopped from outside)"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"{work.actor} crashed ({name})"
