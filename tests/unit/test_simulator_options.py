"""Run-time options: windows parse, /_sim/config changes apply whole or not at all."""

from __future__ import annotations

import pytest

from eva00.simulator.options import OptionError, SimOptions, Window, parse_window
from eva00.simulator.storage import parse_range


@pytest.mark.parametrize(
    ("text", "expected"),
    [("100/60", Window(100, 60.0, "w")), ("25/10", Window(25, 10.0, "w")), ("off", None), (None, None)],
)
def test_windows_parse_from_n_per_seconds(text: str | None, expected: Window | None) -> None:
    assert parse_window(text, "w") == expected


@pytest.mark.parametrize("text", ["abc", "10/x", "0/10", "-5/10"])
def test_malformed_windows_are_refused(text: str) -> None:
    with pytest.raises(OptionError):
        parse_window(text, "w")


def test_a_config_change_with_one_bad_key_changes_nothing() -> None:
    options = SimOptions()
    with pytest.raises(OptionError):
        options.update({"lenient": True, "token_lifetime_s": "soon"})
    assert options.lenient is False and options.token_lifetime_s == 5400.0
    options.update({"lenient": True, "rate_limit": "5/2", "hourly": 600, "webhooks": {"delay_s": 1}})
    assert options.lenient and options.rate_limit == Window(5, 2.0, "rate_limit")
    assert options.hourly == Window(600, 3600.0, "hourly") and options.webhooks.delay_s == 1.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", (0, 10)),
        ("bytes=90-", (90, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=95-200", (95, 100)),
        ("bytes=100-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=9-3", "unsatisfiable"),
        ("bytes=0-1,3-4", None),
        ("items=0-1", None),
        ("bytes=-", None),
    ],
)
def test_range_headers_parse_to_one_range_or_are_ignored(header: str, expected: object) -> None:
    assert parse_range(header, 100) == expected
