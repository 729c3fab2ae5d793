"""Simulator fixtures: ``sim`` (a fresh small simulator per test, rate limits off) and
``sim_factory`` (start one with any options: ``sim_factory(rate_limit="5/2", lenient=True)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from eva00.simulator.testing import SimHandle, running_simulator

SMALL = {"projects": 3, "items": 200, "rate_limit": "off", "file_size_bytes": 4096}


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Callable[..., SimHandle]]:
    with ExitStack() as stack:
        def start(**options: Any) -> SimHandle:
            return stack.enter_context(running_simulator(tmp_path / "sim", **{**SMALL, **options}))
        yield start


@pytest.fixture
def sim(sim_factory: Callable[..., SimHandle]) -> SimHandle:
    return sim_factory()
