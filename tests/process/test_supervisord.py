"""The real supervisord.conf, run in a temp dir: every program reaches RUNNING, and a program killed
with SIGKILL is brought back by supervisord."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eva00.config import Settings
from eva00.ops import supervision
from eva00.ops.localstack import free_port

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def running_stack() -> Iterator[Settings]:
    # Not pytest's tmp_path: its parents are 0700, and when run as root the servers' unprivileged
    # account must traverse down to var/ (eva00 never changes a parent's mode).
    base = Path(tempfile.mkdtemp(prefix="eva00-supervisord-"))
    base.chmod(0o711)
    var = base / "var"
    env = {
        "EVA00_VAR_DIR": str(var),
        "EVA00_DATA_DIR": str(var / "data"),
        "EVA00_PG_PORT": str(free_port()),
        "EVA00_REDIS_PORT": str(free_port()),
        "EVA00_SIM_PORT": str(free_port()),
        "EVA00_SIM_STORAGE_PORT": str(free_port()),
        "EVA00_SIM_FILE_PORT": str(free_port()),
        "EVA00_SIM_PROJECTS": "2",
        "EVA00_SIM_ITEMS": "100",
        "EVA00_WEBHOOK_PORT": str(free_port()),
        "EVA00_DASHBOARD_PORT": str(free_port()),
    }
    settings = Settings.from_env(env, dotenv=None)
    full_env = {**os.environ, **env}
    done = subprocess.run([sys.executable, "-m", "eva00", "up", "--wait-s", "60"], env=full_env,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    try:
        assert supervision.is_running(settings), done.stderr + done.stdout
        yield settings
    finally:
        # Downloaders may finish a transfer on SIGTERM (stopwaitsecs=300): allow for it.
        subprocess.run([sys.executable, "-m", "eva00", "down"], env=full_env, cwd=ROOT,
                       capture_output=True, timeout=400)
        shutil.rmtree(base, ignore_errors=True)


def _infos(settings: Settings) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in supervision.rpc(settings).supervisor.getAllProcessInfo()}


def _wait_for(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_every_program_of_the_real_config_reaches_running(running_stack: Settings) -> None:
    configured = _configured_programs()
    infos = _infos(running_stack)
    assert set(infos) == configured
    assert _wait_for(lambda: all(i["statename"] == "RUNNING" for i in _infos(running_stack).values()),
                     30), {n: (i["statename"], i["description"]) for n, i in _infos(running_stack).items()}


def test_a_program_killed_with_sigkill_is_brought_back(running_stack: Settings) -> None:
    for name in ("redis", "keepalive"):
        # a stage that lost Redis with it may itself be restarting: kill it only once it runs again
        assert _wait_for(lambda n=name: _infos(running_stack)[n]["statename"] == "RUNNING", 30), \
            _infos(running_stack)[name]
        before = _infos(running_stack)[name]
        os.kill(before["pid"], signal.SIGKILL)
        assert _wait_for(lambda n=name, p=before["pid"]: _infos(running_stack)[n]["statename"] == "RUNNING"
                         and _infos(running_stack)[n]["pid"] != p, 30), _infos(running_stack)[name]


def test_supervisorctl_from_the_repo_root_talks_to_the_stack(running_stack: Settings) -> None:
    socket = running_stack.var_dir / "supervisor.sock"
    done = subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-s", f"unix://{socket}",
                           "status"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert "eva00:redis" in done.stdout and "RUNNING" in done.stdout, done.stdout + done.stderr


def _configured_programs() -> set[str]:
    """Process names supervisord will run: a program with numprocs=N runs NAME-0 .. NAME-(N-1)."""
    import configparser

    parser = configparser.RawConfigParser()
    parser.read(ROOT / "supervisord.conf")
    names = set()
    for section in parser.sections():
        if section.startswith(("program:", "eventlistener:")):
            name = section.split(":", 1)[1]
            count = int(parser.get(section, "numprocs", fallback="1"))
            names |= {name} if count == 1 else {f"{name}-{n}" for n in range(count)}
    return names
