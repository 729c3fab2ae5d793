"""Range helpers of the safe downloader."""

from __future__ import annotations

from eva00.procore.files import ContentRange, parse_content_range, range_header


def test_a_resume_asks_for_the_rest_of_the_file() -> None:
    assert range_header(0) == {}
    assert range_header(1024) == {"Range": "bytes=1024-"}


def test_content_range_is_parsed_with_or_without_a_known_total() -> None:
    assert parse_content_range("bytes 1024-2047/4096") == ContentRange(1024, 2047, 4096)
    assert parse_content_range("bytes 0-9/*") == ContentRange(0, 9, None)
    assert parse_content_range("items 0-9/10") is None
    assert parse_content_range(None) is None
