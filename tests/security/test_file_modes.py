"""Finding 9 of issue 17: nothing the stack writes is readable by other local accounts (var/,
the generated passwords, the servers' data and Redis's AOF, logs, downloads), every program runs
with umask 077, and no directory above var/ is ever changed to let the servers' account in."""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from eva00 import stack_secrets
from eva00.config import ROOT_DIR, Settings
from eva00.ops import supervision
from eva00.ops.localstack import RedisSpec, StackError, free_port, prepare_var_dir, run_as
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]


def _loose(var_dir: Path) -> list[str]:
    """Every path under ``var_dir`` with a group or other bit; var/ itself may be 0710 for the
    servers' group when root (traverse only, so that account reaches its own directories)."""
    found = []
    for path in [var_dir, *var_dir.rglob("*")]:
        try:
            info = path.lstat()
        except FileNotFoundError:  # a server's temp file, gone meanwhile
            continue
        if stat.S_ISLNK(info.st_mode) or stat.S_ISSOCK(info.st_mode):
            continue
        allowed = 0o010 if path == var_dir and run_as() is not None else 0
        if info.st_mode & 0o077 & ~allowed:
            found.append(f"{path} {info.st_mode & 0o777:04o}")
    return found


def test_the_servers_files_secrets_and_logs_are_private(stack: Stack, redis_url: str) -> None:
    base = stack.base
    assert (base / "redis" / "appendonly.aof").exists() or (base / "redis" / "appendonlydir").exists()
    for name in (stack_secrets.PG_OWNER, stack_secrets.PG_APP, stack_secrets.PGPASS,
                 stack_secrets.REDIS_APP, stack_secrets.REDIS_ADMIN):
        assert (base / "secrets" / name).stat().st_mode & 0o777 == 0o600, name
    assert (base / "secrets").stat().st_mode & 0o777 == 0o700
    assert _loose(base) == []


def test_secrets_are_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        stack_secrets.ensure_stack_secrets(tmp_path / "secrets")
    finally:
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "secrets").iterdir()}
    assert modes and set(modes.values()) == {0o600}
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A temp dir the servers' account may traverse (pytest's tmp_path has 0700 parents)."""
    path = Path(tempfile.mkdtemp(prefix="eva00-modes-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_loose_var_dir_left_by_an_older_version_is_tightened(reachable_tmp: Path) -> None:
    var = reachable_tmp / "var"
    (var / "redis").mkdir(parents=True)
    var.chmod(0o755)
    aof = var / "redis" / "appendonly.aof"
    aof.write_text("*1\r\n$4\r\nPING\r\n")
    aof.chmod(0o644)  # what Redis wrote before the umask
    RedisSpec(var / "redis", free_port()).prepare()
    assert var.stat().st_mode & 0o777 == (0o710 if run_as() else 0o700)
    assert aof.stat().st_mode & 0o777 == 0o600
    assert _loose(var) == []


@pytest.mark.parametrize("parent_mode", [0o700, 0o750, 0o755])
def test_no_directory_above_var_is_ever_changed(reachable_tmp: Path, parent_mode: int) -> None:
    parent = reachable_tmp / "home"
    parent.mkdir()
    parent.chmod(parent_mode)
    reachable = run_as() is None or parent_mode & 0o001
    if reachable:
        prepare_var_dir(parent / "var")
    else:  # the servers' account could not reach var/: a clear error, not a chmod of the parent
        with pytest.raises(StackError, match="cannot be traversed"):
            prepare_var_dir(parent / "var")
    assert parent.stat().st_mode & 0o777 == parent_mode
    assert reachable_tmp.stat().st_mode & 0o777 == 0o711


def test_every_program_and_command_runs_with_umask_077(tmp_path: Path) -> None:
    code = ("import os; from eva00.config import load_or_exit; load_or_exit();"
            " print(oct(os.umask(0o22)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "EVA00_VAR_DIR": str(tmp_path)}, timeout=60)
    assert done.stdout.strip() == "0o77", done.stderr
    conf = configparser.RawConfigParser()
    conf.read(ROOT_DIR / "supervisord.conf")
    assert conf.get("supervisord", "umask") == "077"


@pytest.fixture
def supervised() -> Iterator[Settings]:
    base = Path(tempfile.mkdtemp(prefix="eva00-modes-"))
    base.chmod(0o711)  # our own temp dir: when root, the servers' account must reach var/ in it
    env = {"EVA00_VAR_DIR": str(base / "var"), "EVA00_DATA_DIR": str(base / "var" / "data"),
           "EVA00_PG_PORT": str(free_port()), "EVA00_REDIS_PORT": str(free_port()),
           "EVA00_SIM_PORT": str(free_port()), "EVA00_SIM_STORAGE_PORT": str(free_port()),
           "EVA00_SIM_PROJECTS": "1", "EVA00_SIM_ITEMS": "20",
           "EVA00_WEBHOOK_PORT": str(free_port()), "EVA00_DASHBOARD_PORT": str(free_port())}
    settings = Settings.from_env(env, dotenv=None)
    full_env = {**os.environ, **env}
    try:
        done = subprocess.run([sys.executable, "-m", "eva00", "up", "--wait-s", "60"], env=full_env,
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert supervision.is_running(settings), done.stderr + done.stdout
        yield settings
    finally:
        subprocess.run([sys.executable, "-m", "eva00", "down"], env=full_env, cwd=ROOT,
                       capture_output=True, timeout=400)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.process
def test_a_stack_under_supervisord_keeps_every_file_to_itself(supervised: Settings) -> None:
    deadline = time.monotonic() + 90
    while True:  # the stages have logged in as the app role and applied the schema
        try:
            with psycopg.connect(supervised.effective_database_url, connect_timeout=3) as conn:
                if conn.execute("SELECT count(*) FROM oauth_tokens").fetchone() == (1,):
                    break
        except psycopg.Error:
            pass
        assert time.monotonic() < deadline, "the stages never stored a token"
        time.sleep(0.5)
    var = supervised.var_dir
    logs = sorted(p.name for p in (var / "log").iterdir())
    assert {"postgres.log", "redis.log", "scheduler.log", "keepalive.log"} <= set(logs)
    assert _loose(var) == []
    assert "authentication failed" not in (var / "log" / "keepalive.log").read_text()
