"""Starting, stopping and inspecting the supervisord that runs every EVA-00 process.

supervisord.conf reads a few ENV_* values (the interpreter, the repo root, the runtime dir and
which embedded services to autostart); this module derives them from Settings so the file itself
never needs editing between an embedded demo and a production deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Mapping
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from eva00.config import ROOT_DIR, Settings

CONF_PATH = ROOT_DIR / "supervisord.conf"
GROUP = "eva00"


class SupervisionError(Exception):
    pass


def supervisor_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update({
        "EVA00_PYTHON": sys.executable,
        "EVA00_ROOT": str(ROOT_DIR),
        "EVA00_VAR_DIR": str(settings.var_dir),
        "EVA00_EMBED_POSTGRES": str(settings.embedded_postgres).lower(),
        "EVA00_EMBED_REDIS": str(settings.embedded_redis).lower(),
        "EVA00_EMBED_SIMULATOR": str(settings.embedded_simulator).lower(),
    })
    return env


def socket_path(settings: Settings) -> Path:
    return settings.var_dir / "supervisor.sock"


class _UnixHTTPConnection(HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self._path = path

    def connect(self) -> None:
        import socket

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host: Any) -> HTTPConnection:
        return _UnixHTTPConnection(self._path)


def rpc(settings: Settings) -> Any:
    """The supervisord XML-RPC proxy over its unix socket."""
    return xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(
        str(socket_path(settings))))


def is_running(settings: Settings) -> bool:
    try:
        return bool(rpc(settings).supervisor.getState()["statename"] == "RUNNING")
    except (OSError, xmlrpc.client.Fault):
        return False


def up(settings: Settings, *, conf: Path = CONF_PATH, wait_s: float = 60.0) -> list[dict[str, Any]]:
    """Start supervisord (daemonized) unless it runs; wait until autostarted programs settle.

    The embedded stack's passwords are made first, so every program reads them at its start."""
    from eva00 import stack_secrets
    from eva00.ops.localstack import prepare_var_dir

    prepare_var_dir(settings.var_dir)
    stack_secrets.private_dir(settings.var_dir / "log")
    stack_secrets.tighten(settings.var_dir / "log")
    if settings.embedded_postgres or settings.embedded_redis:
        stack_secrets.ensure_stack_secrets(settings.secrets_dir)
    if not is_running(settings):
        supervisord = str(Path(sys.executable).parent / "supervisord")
        done = subprocess.run([supervisord, "-c", str(conf)], env=supervisor_env(settings),
                              capture_output=True, text=True, cwd=ROOT_DIR)
        if done.returncode != 0:
            raise SupervisionError(f"supervisord did not start: {done.stderr.strip() or done.stdout}")
    return wait_settled(settings, wait_s)


def wait_settled(settings: Settings, wait_s: float) -> list[dict[str, Any]]:
    """Wait until no program is STARTING; FATAL or BACKOFF programs are reported, not hidden."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            infos: list[dict[str, Any]] = rpc(settings).supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Fault):
            infos = []
        starting = [i for i in infos if i["statename"] in ("STARTING", "BACKOFF")]
        if infos and not starting:
            return infos
        if time.monotonic() > deadline:
            return infos
        time.sleep(0.3)


def down(settings: Settings, wait_s: float = 360.0) -> None:
    if not is_running(settings):
        return
    proxy = rpc(settings)
    # Stages first (they may still be committing), services last.
    proxy.supervisor.stopAllProcesses(True)
    proxy.supervisor.shutdown()
    deadline = time.monotonic() + wait_s
    while is_running(settings) and time.monotonic() < deadline:
        time.sleep(0.2)


def format_status(infos: list[dict[str, Any]]) -> str:
    lines = []
    for info in infos:
        name = f"{info['group']}:{info['name']}"
        lines.append(f"{name:<28} {info['statename']:<9} {info['description']}")
    return "\n".join(lines)
