"""Generated passwords of the embedded stack, each in its own 0600 file under ``var/secrets/``.

A secret is made once, by whichever process needs it first (O_EXCL, so two racing starters end
with the same value), and never printed or logged. Reading a missing secret gives "" so that a
command run before the stack was ever started fails to authenticate instead of inventing one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

SECRET_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
# The file names under var/secrets/ (README's "Security notes" lists them).
PG_OWNER = "postgres-owner.password"
PG_APP = "postgres-app.password"
PGPASS = "pgpass"  # libpq's password file for both roles, named by `passfile=` in the URLs
REDIS_APP = "redis-app.password"
REDIS_ADMIN = "redis-admin.password"


def private_dir(path: Path) -> Path:
    """``path`` created if missing and made 0700; its parents are never touched."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def tighten(path: Path) -> None:
    """Drop group and other bits under ``path`` (files an older version left 0644, e.g. logs and
    Redis's AOF). For small directories only: the document store is left to `eva00 doctor`."""
    for found in [path, *path.rglob("*")]:
        info = found.lstat()
        if not os.path.islink(found) and info.st_mode & 0o077:
            found.chmod(info.st_mode & 0o7700)


def read_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def ensure_secret(path: Path, size_bytes: int = 32) -> str:
    """The secret stored at ``path``, made now (URL-safe, ``size_bytes`` of entropy) if missing."""
    private_dir(path.parent)
    value = secrets.token_urlsafe(size_bytes)
    with contextlib.suppress(FileExistsError):  # made by a racing starter: keep theirs
        write_private(path, value + "\n", exclusive=True)
    return read_secret(path)


def write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` to a 0600 file (mode set at creation, so it is never readable by others)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, SECRET_MODE)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), SECRET_MODE)
        handle.write(text)


def ensure_stack_secrets(secrets_dir: Path) -> None:
    """Every password of the embedded stack, plus the pgpass file libpq reads them from."""
    for name in (PG_OWNER, PG_APP, REDIS_APP, REDIS_ADMIN):
        ensure_secret(secrets_dir / name)
    lines = [f"*:*:*:{role}:{read_secret(secrets_dir / name)}\n"
             for role, name in ((PG_OWNER_ROLE, PG_OWNER), (PG_APP_ROLE, PG_APP))]
    pgpass = secrets_dir / PGPASS
    if read_secret(pgpass) != "".join(lines).strip():
        # Written aside then renamed, so a racing starter never reads half a file.
        scratch = pgpass.with_name(f"{PGPASS}.{os.getpid()}.tmp")
        write_private(scratch, "".join(lines))
        os.replace(scratch, pgpass)


# The embedded PostgreSQL's roles: the owner applies schema.sql; the stages log in as the app role.
PG_OWNER_ROLE = "eva00_owner"
PG_APP_ROLE = "eva00"
# The embedded Redis's ACL users: the stages' one has no admin command; the admin one is for
# operators' maintenance and the test fixtures' FLUSHALL.
REDIS_APP_USER = "eva00"
REDIS_ADMIN_USER = "eva00-admin"
