"""Start a simulator as a subprocess for a test and talk to its control API.

    with running_simulator(tmp_path, projects=3, items=200, rate_limit="off") as sim:
        token = requests.post(sim.login_base + "/oauth/token", data=sim.client_credentials()).json()
        ...
        assert sim.stats()["token_leaks"] == 0

Options map to CLI flags: ``rate_limit="off"`` -> ``--rate-limit off``, ``lenient=True`` ->
``--lenient`` (a False flag is left out).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

START_TIMEOUT_S = 60.0


class SimulatorFailed(RuntimeError):
    """The simulator did not start, or a control call failed."""


@dataclass
class SimHandle:
    api_base: str
    login_base: str
    storage_base: str
    company_id: int
    client_id: str
    client_secret: str
    pid: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None
    file_base: str = ""  # the file host, where record file URLs point

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = requests.request(method, self.api_base + path, timeout=60, **kwargs)
        if answer.status_code >= 400:
            raise SimulatorFailed(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json()

    def client_credentials(self) -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret}

    def token(self) -> str:
        answer = requests.post(self.login_base + "/oauth/token", data=self.client_credentials(), timeout=30)
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def headers(self, token: str | None = None) -> dict[str, str]:
        """What every API call carries: the bearer token and the company header."""
        return {"Authorization": f"Bearer {token or self.token()}",
                "Procore-Company-Id": str(self.company_id)}

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_sim/health"))

    def ledger(self, since_seq: int = 0) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", "/_sim/ledger", params={"since": since_seq})
            entries += page["entries"]
            if not page["entries"]:
                return entries
            since_seq = page["next"]

    def truth(self, kinds: list[str] | None = None, project_id: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if kinds:
            params["kinds"] = ",".join(kinds)
        if project_id is not None:
            params["project_id"] = project_id
        return dict(self._call("GET", "/_sim/truth", params=params))

    def mutate(self, action: str, kind: str | None = None, **spec: Any) -> list[dict[str, Any]]:
        body = {"action": action, "kind": kind, **spec}
        return list(self._call("POST", "/_sim/mutate", json=body)["changed"])

    def set_faults(self, mode: str, ratio: float = 1.0, count: int | None = None, **spec: Any) -> list[Any]:
        return list(self._call("POST", "/_sim/faults",
                               json={"mode": mode, "ratio": ratio, "count": count, **spec})["faults"])

    def faults(self) -> list[dict[str, Any]]:
        """The active faults with their hit counts."""
        return list(self._call("GET", "/_sim/faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/_sim/stats"))

    def configure(self, **changes: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/_sim/config", json=changes))

    def forbid_project(self, project_id: int) -> None:
        self._call("POST", f"/_sim/projects/{project_id}/forbid")

    def allow_project(self, project_id: int) -> None:
        self._call("POST", f"/_sim/projects/{project_id}/allow")

    def switch_tool(self, project_id: int, tool: str, on: bool) -> dict[str, list[int]]:
        """Switch a Procore tool (eva00/simulator/tools.py) off or on in one project."""
        answer = self._call("POST", f"/_sim/projects/{project_id}/tools/{tool}/{'on' if on else 'off'}")
        return dict(answer["tools_off"])

    def tools_off(self) -> dict[str, list[int]]:
        return dict(self._call("GET", "/_sim/tools")["tools_off"])

    def expire_tokens(self) -> int:
        return int(self._call("POST", "/_sim/tokens/expire")["expired"])

    def reset_rate_limits(self) -> None:
        self._call("POST", "/_sim/rate_limits/reset")

    def new_file(self, size_bytes: int, fmt: str = "pdf") -> dict[str, Any]:
        return dict(self._call("POST", "/_sim/files", json={"size_bytes": size_bytes, "format": fmt}))

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, wait; returns the exit code (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


def cli_args(options: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        else:
            args += [flag, str(value)]
    return args


@contextmanager
def running_simulator(tmp_dir: Path, **options: Any) -> Iterator[SimHandle]:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    ready = tmp_dir / f"sim-{os.getpid()}-{time.monotonic_ns()}.ready.json"
    log_path = ready.with_suffix(".log")
    defaults = {"company_id": 1000, "client_id": "eva00-sim-client", "client_secret": "eva00-sim-secret"}
    merged = {**defaults, **options}
    command = [sys.executable, "-m", "eva00.simulator", "--port", "0", "--storage-port", "0",
               "--file-port", "0",
               "--ready-file", str(ready), *cli_args(merged)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    handle: SimHandle | None = None
    try:
        info = _wait_ready(process, ready, log_path)
        handle = SimHandle(info["api_base"], info["login_base"], info["storage_base"],
                           int(merged["company_id"]), str(merged["client_id"]), str(merged["client_secret"]),
                           int(info["pid"]), process, log_path, str(info.get("file_base", "")))
        yield handle
    finally:
        if handle is not None:
            handle.stop()
        elif process.poll() is None:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready.exists():
            return dict(json.loads(ready.read_text()))
        if process.poll() is not None:
            raise SimulatorFailed(f"the simulator exited with {process.returncode}: "
                                  f"{log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    process.kill()
    raise SimulatorFailed(f"the simulator was not ready within {START_TIMEOUT_S:.0f} s")
