"""The chaos suite at CI scale (3 projects, 300 items, a few kills per stage type): each scenario on
a real supervisord stack must end with every checker figure 0. `make chaos` runs the full scale."""

from __future__ import annotations

import pytest

from eva00.chaos.scenarios import SCENARIOS, run_scenario
from eva00.chaos.stack import SCALES

pytestmark = pytest.mark.process


@pytest.mark.parametrize("number", sorted(SCENARIOS), ids=[SCENARIOS[n][0] for n in sorted(SCENARIOS)])
def test_the_replica_checks_clean_after_the_chaos_scenario(number: int) -> None:
    outcome = run_scenario(number, SCALES["ci"])
    table = outcome.report.table() if outcome.report else "(the checker never ran)"
    assert outcome.passed, f"{outcome.name}: {outcome.problems}\n{outcome.notes}\n{table}"
