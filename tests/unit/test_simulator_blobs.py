"""Generated files: valid documents of exactly the asked size, any byte range computable alone."""

from __future__ import annotations

import hashlib

import pymupdf
import pytest

from eva00.simulator.blobs import Blob, BlobRegistry

SIZES = (0, 700, 4096, 65_004, 65_005, 65_013, 130_010, 1_000_003)


def whole(blob: Blob, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(bytes(piece) for piece in blob.read(start, end))


@pytest.mark.parametrize("fmt", ["pdf", "png", "jpeg"])
@pytest.mark.parametrize("size", SIZES)
def test_every_file_opens_and_is_exactly_its_size(fmt: str, size: int) -> None:
    blob = Blob(7_000_000_001, fmt, size, "Drawing A-101 rev 2")
    data = whole(blob)
    assert len(data) == blob.size and (blob.size == size or size < 4096)
    document = pymupdf.open(stream=data, filetype=fmt)
    assert document.page_count == 1
    if fmt == "pdf":
        assert "A-101" in document[0].get_text()


@pytest.mark.parametrize("fmt", ["pdf", "png", "jpeg"])
def test_any_range_equals_the_same_slice_of_the_whole(fmt: str) -> None:
    blob = Blob(7_000_000_002, fmt, 300_007, "x")
    data = whole(blob)
    for start, end in ((0, 1), (5, 70_000), (65_000, 65_100), (299_990, 300_007), (150_000, 150_000)):
        assert whole(blob, start, end) == data[start:end]


def test_files_differ_from_each_other_and_a_new_generation_changes_content_and_etag() -> None:
    registry = BlobRegistry()
    first, second = registry.add("pdf", 100_000, "a"), registry.add("pdf", 100_000, "a")
    assert registry.sha256(first) != registry.sha256(second)
    etag, digest = first.etag, registry.sha256(first)
    registry.bump_generation(first.file_id)
    assert first.etag != etag and registry.sha256(first) != digest
    assert registry.sha256(first) == hashlib.sha256(whole(first)).hexdigest()


def test_a_gigabyte_streams_in_pieces_no_larger_than_a_unit() -> None:
    blob = Blob(7_000_000_003, "pdf", 1 << 30, "big")
    total = largest = 0
    for piece in blob.read():
        total += len(piece)
        largest = max(largest, len(piece))
    assert total == 1 << 30 and largest <= 65_536
