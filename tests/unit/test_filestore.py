"""The content-addressed store: dedup, atomic placement, nothing partial at a final path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from eva00.replica.filestore import DiskLow, FileStore, hash_file


def _write_temp(store: FileStore, data: bytes) -> Path:
    path, handle = store.open_temp()
    with handle:
        handle.write(data)
    return path


def test_the_same_bytes_under_two_records_are_stored_once(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first = store.commit(_write_temp(store, b"drawing A1 rev 3"))
    second = store.commit(_write_temp(store, b"drawing A1 rev 3"))
    assert first.sha256 == second.sha256 == hashlib.sha256(b"drawing A1 rev 3").hexdigest()
    assert not first.deduplicated and second.deduplicated
    assert list(store.tmp.iterdir()) == []
    assert [p for p in store.root.rglob("*") if p.is_file()] == [first.path]


def test_a_stored_file_lives_at_its_hash_split_in_two_levels(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    stored = store.commit(_write_temp(store, b"x"))
    digest = stored.sha256
    assert stored.path == tmp_path / "files" / digest[:2] / digest[2:4] / digest
    assert stored.path.read_bytes() == b"x"


def test_a_hash_mismatch_places_nothing_and_removes_the_temp_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    temp = _write_temp(store, b"truncated")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        store.commit(temp, expected_sha256="0" * 64)
    assert not temp.exists()
    assert [p for p in store.root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "report.pdf", ""])
def test_names_from_outside_never_become_paths(tmp_path: Path, name: str) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(ValueError):
        store.open_temp(name)


@pytest.mark.parametrize("digest", ["../../x", "A" * 64, "0" * 63])
def test_only_sha256_digests_address_files(tmp_path: Path, digest: str) -> None:
    with pytest.raises(ValueError):
        FileStore(tmp_path).path_for(digest)


def test_low_disk_space_is_reported_below_the_configured_share(tmp_path: Path) -> None:
    usage = {"free": 10}
    store = FileStore(tmp_path, min_free_ratio=0.2,
                      disk_usage=lambda _p: (100, 100 - usage["free"], usage["free"]))
    with pytest.raises(DiskLow, match=r"10\.0% of the disk is free"):
        store.check_space()
    usage["free"] = 30
    store.check_space()


def test_abandoned_temp_files_are_cleaned_but_fresh_ones_kept(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    old = _write_temp(store, b"old")
    fresh = _write_temp(store, b"fresh")
    import os

    os.utime(old, (1000, 1000))
    assert store.clean_temp(older_than_s=3600, now=fresh.stat().st_mtime) == 1
    assert fresh.exists() and not old.exists()


def test_hash_file_streams_large_inputs(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"\x01" * (3 * (1 << 20) + 7))
    digest, size = hash_file(path)
    assert size == 3 * (1 << 20) + 7
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
