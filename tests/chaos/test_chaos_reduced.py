"""The chaos suite at CI scale (3 projects, 300 items, a few kills per stage type): each scenario on
a real supervisord stack must end with every checker figure 0. `make chaos` runs the full scale.

The scenarios run two at a time (each on its own stack, ports and temp dir), as `make chaos` could
not: the CI budget is minutes, and every scenario waits for quiet rather than for a fixed time, so
a busier machine makes one slower, never wrong."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from eva00.proof.chaos.scenarios import SCENARIOS, Outcome, run_scenario
from eva00.proof.chaos.stack import SCALES

pytestmark = pytest.mark.process

CONCURRENT_SCENARIOS = 2


@pytest.fixture(scope="module")
def outcomes() -> Iterator[dict[int, Future[Outcome]]]:
    # The slowest first, so the pair finishes together.
    order = [7, 4, 1, 2, 6, 5, 3]
    assert sorted(order) == sorted(SCENARIOS)
    with ThreadPoolExecutor(CONCURRENT_SCENARIOS, thread_name_prefix="chaos") as pool:
        yield {n: pool.submit(run_scenario, n, SCALES["ci"]) for n in order}


@pytest.mark.parametrize("number", sorted(SCENARIOS), ids=[SCENARIOS[n][0] for n in sorted(SCENARIOS)])
def test_the_replica_checks_clean_after_the_chaos_scenario(
        number: int, outcomes: dict[int, Future[Outcome]]) -> None:
    outcome = outcomes[number].result()
    table = outcome.report.table() if outcome.report else "(the checker never ran)"
    assert outcome.passed, f"{outcome.name}: {outcome.problems}\n{outcome.notes}\n{table}"
