"""Content-addressed file storage: `files/ab/cd/<sha256>` under EVA00_DATA_DIR, written safely.

Bytes stream into a temp file on the same filesystem while SHA-256 is computed; the temp file is
fsynced, then either dropped (the hash is already stored: dedup) or renamed atomically into place
and the directory fsynced. A final path therefore only ever holds complete, verified bytes, even
when the disk fills up or the process is killed midway. File names from Procore never become
paths: only hashes and our own temp names do.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = "dl-"


class DiskLow(Exception):
    """Free space is below the configured share: downloads must pause."""


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size_bytes: int
    path: Path
    deduplicated: bool


class FileStore:
    def __init__(self, data_dir: Path, *, min_free_ratio: float = 0.20,
                 disk_usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage) -> None:
        self.root = data_dir / "files"
        self.tmp = data_dir / "tmp"
        self.min_free_ratio = min_free_ratio
        self._disk_usage = disk_usage
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def free_ratio(self) -> float:
        total, _used, free = self._disk_usage(self.root)
        return free / total if total else 0.0

    def check_space(self) -> None:
        ratio = self.free_ratio()
        if ratio < self.min_free_ratio:
            raise DiskLow(f"{ratio:.1%} of the disk is free, below {self.min_free_ratio:.0%}")

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    # --- writing ---

    def temp_path(self, name: str) -> Path:
        """The stable temp file of download ``name``, so an interrupted download can resume."""
        if not name.isalnum():
            raise ValueError("temp names are alphanumeric ids, never file names from Procore")
        return self.tmp / f"{TMP_PREFIX}{name}"

    def open_temp(self, name: str | None = None) -> tuple[Path, BinaryIO]:
        """A temp file for a download; a stable ``name`` lets an interrupted download resume."""
        if name is not None:
            path = self.temp_path(name)
            return path, path.open("ab")
        fd, raw = tempfile.mkstemp(prefix=TMP_PREFIX, dir=self.tmp)
        return Path(raw), os.fdopen(fd, "wb")

    def commit(self, temp: Path, expected_sha256: str | None = None) -> StoredFile:
        """Hash the finished temp file, then dedup or move it into place durably."""
        digest, size = hash_file(temp)
        if expected_sha256 is not None and digest != expected_sha256:
            temp.unlink(missing_ok=True)
            raise ValueError(f"sha256 mismatch: got {digest}, expected {expected_sha256}")
        return self._place(temp, digest, size)

    def commit_hashed(self, temp: Path, sha256: str, size_bytes: int) -> StoredFile:
        """Like commit() for a temp file whose hash was computed while it was written."""
        return self._place(temp, sha256, size_bytes)

    def _place(self, temp: Path, sha256: str, size_bytes: int) -> StoredFile:
        final = self.path_for(sha256)
        if final.is_file():
            temp.unlink(missing_ok=True)
            return StoredFile(sha256, size_bytes, final, deduplicated=True)
        fsync_path(temp)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temp, final)
        fsync_path(final.parent)
        return StoredFile(sha256, size_bytes, final, deduplicated=False)

    def clean_temp(self, older_than_s: float, now: float) -> int:
        """Remove abandoned temp files (a resumable one is refreshed by every write)."""
        removed = 0
        for path in self.tmp.glob(f"{TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
        return removed


def hash_file(path: Path, chunk_bytes: int = 1 << 20) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def fsync_path(path: Path) -> None:
    """Flush a file's bytes, or a directory's entries (a rename is durable only once its directory
    is), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
