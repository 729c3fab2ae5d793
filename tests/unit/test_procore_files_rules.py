"""Range helpers of the one download path."""

from __future__ import annotations

from eva00.procore.transfer import ContentRange, parse_content_range


def test_content_range_is_parsed_with_or_without_a_known_total() -> None:
    assert parse_content_range("bytes 1024-2047/4096") == ContentRange(1024, 2047, 4096)
    assert parse_content_range("bytes 0-9/*") == ContentRange(0, 9, None)
    assert parse_content_range("items 0-9/10") is None
    assert parse_content_range(None) is None
