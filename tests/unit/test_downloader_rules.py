"""Pure rules of the downloader: priority streams, content sniffing (plain http: tests/security)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eva00 import keys
from eva00.stages.downloader import (
    DOWNLOAD_INPUTS,
    STREAM_FILES_BY_PRIORITY,
    sniff_content_type,
)


@pytest.mark.parametrize(("priority", "stream"), [
    (1, "eva00:files:p1"), (2, "eva00:files:p2"), (5, "eva00:files:p5"), (0, "eva00:files:p1"),
    (9, "eva00:files:p5")])
def test_each_priority_has_its_stream_and_odd_values_are_clamped(priority: int, stream: str) -> None:
    assert keys.file_stream(priority) == stream


def test_the_downloader_reads_submittals_first_and_other_files_last() -> None:
    assert [s for s, _g in DOWNLOAD_INPUTS] == list(STREAM_FILES_BY_PRIORITY)
    assert {g for _s, g in DOWNLOAD_INPUTS} == {keys.GROUP_DOWNLOADERS}
    assert all(stream.startswith(f"{keys.PREFIX}:files:p") for stream in STREAM_FILES_BY_PRIORITY)
    assert keys.DOWNLOAD_SLOTS not in STREAM_FILES_BY_PRIORITY


def test_every_downloader_stream_is_in_the_pipeline_and_no_unrouted_files_stream_is_left() -> None:
    groups = {stream for stream, _group in keys.PIPELINE_GROUPS}
    assert set(STREAM_FILES_BY_PRIORITY) <= groups
    assert f"{keys.PREFIX}:files" not in groups and not hasattr(keys, "STREAM_FILES")


@pytest.mark.parametrize(("head", "kind"), [
    (b"%PDF-1.7\n", "application/pdf"), (b"\xff\xd8\xff\xe0", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n....", "image/png"), (b"PK\x03\x04", "application/octet-stream")])
def test_content_types_are_sniffed_when_storage_does_not_say(tmp_path: Path, head: bytes, kind: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(head + b"rest")
    assert sniff_content_type(path) == kind


def test_hashing_on_a_thread_of_its_own_gives_the_digest_of_the_chunks_in_order() -> None:
    import hashlib
    import os

    from eva00.procore.transfer import _BackgroundHash

    chunks = [os.urandom(size) for size in (1, 70_000, 0, 1 << 20, 3) * 5]
    digest = hashlib.sha256()
    with _BackgroundHash(digest, depth=2) as hashing:
        for chunk in chunks:
            hashing.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_an_interrupted_transfer_leaves_no_hashing_thread_behind() -> None:
    import hashlib
    import threading

    from eva00.procore.transfer import _BackgroundHash

    with pytest.raises(ConnectionError), _BackgroundHash(hashlib.sha256()) as hashing:
        hashing.update(b"x" * 100_000)
        raise ConnectionError("the body stopped")
    assert not [t for t in threading.enumerate() if t.name.startswith("sha256")]
