"""Deletes within one poll interval (issue 16): churn with deletes on the simulator, one quiet
poll cycle, then the checker's missed and false soft deletes, and what the delete signals cost.

The scenario is shared with tests/integration/test_deletes_within_one_poll.py: after a full sync,
one record of every kind that has a documented delete signal (recycle bin, include_deleted,
deleted_only, inactive list) is deleted per project (company kinds once), among creates and
updates; then the scheduler's ordinary poll of every family runs once.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.kinds import COMPANY_LEVEL_KINDS
from eva00.procore.endpoints import ENDPOINTS
from eva00.proof.bench.services import local_services
from eva00.proof.checker.run import check
from eva00.proof.pipeline_local import LocalPipeline, settings_for_simulator
from eva00.simulator.testing import SimHandle, running_simulator

SIGNALLED_KINDS = tuple(kind for kind, spec in ENDPOINTS.items() if spec.deleted.has_listing)
CHURN = (("create", "rfi", 3), ("update", "submittal", 3), ("update", "change_event", 2),
         ("create", "meeting", 2))


@dataclass(frozen=True)
class DeleteFigures:
    deleted_upstream: int  # records the scenario deleted in the simulator
    missed: int  # the checker's missed_soft_deletes after one quiet poll cycle
    false: int  # the checker's false_soft_deletes
    polls: dict[str, int]  # polls per signalled kind in the quiet cycle
    signal_requests: dict[str, int]  # deleted-listing requests per signalled kind in that cycle
    examples: list[str]

    @property
    def extra_requests_per_poll(self) -> float:
        """The largest, over the signalled kinds, of deleted-listing requests per poll."""
        ratios = [self.signal_requests.get(kind, 0) / count for kind, count in self.polls.items() if count]
        return max(ratios, default=0.0)


def _signal_patterns() -> list[tuple[str, re.Pattern[str], dict[str, str]]]:
    patterns = []
    for kind in SIGNALLED_KINDS:
        signal = ENDPOINTS[kind].deleted
        template = signal.listing_path or ENDPOINTS[kind].path
        regex = re.escape(template).replace(r"\{company_id\}", r"\d+").replace(r"\{project_id\}", r"\d+")
        patterns.append((kind, re.compile(regex + r"/?\Z"), dict(signal.listing_query)))
    return patterns


def signal_kind(entry: dict[str, Any]) -> str | None:
    """The kind whose deleted listing a ledger entry asked for, or None."""
    query = dict(parse_qsl(str(entry.get("query") or ""), keep_blank_values=True))
    for kind, pattern, wanted in _signal_patterns():
        if pattern.match(str(entry["path"])) and all(query.get(k) == v for k, v in wanted.items()):
            return kind
    return None


def delete_with_churn(sim: SimHandle, projects: list[int]) -> int:
    """Churn (creates, updates) and one delete per signalled kind and project; returns the deletes."""
    for action, kind, count in CHURN:
        sim.mutate(action, kind, count=count)
    deleted = 0
    for kind in SIGNALLED_KINDS:
        for project in [None] if kind in COMPANY_LEVEL_KINDS else projects:
            deleted += sum(1 for c in sim.mutate("delete", kind, project_id=project) if c["kind"] == kind)
    return deleted


def quiet_interval(sim: SimHandle, pipeline: LocalPipeline, redis_client: redis.Redis,
                   projects: list[int]) -> DeleteFigures:
    """The scenario on a pipeline that has synced everything once."""
    deleted = delete_with_churn(sim, projects)
    time.sleep(1.05)  # Date has whole seconds: let the server's clock pass the deletes' second
    seq = max((e["seq"] for e in sim.ledger()), default=0)
    with psycopg.connect(pipeline.settings.effective_database_url) as conn:
        started = conn.execute("SELECT now()").fetchone()
    pipeline.poll_cycle()
    report = check(pipeline.settings, sim, redis_client)
    requests = Counter(kind for kind in map(signal_kind, sim.ledger(since_seq=seq)) if kind)
    with psycopg.connect(pipeline.settings.effective_database_url) as conn:
        rows = conn.execute("SELECT kind, count(DISTINCT poll_id) FROM poll_pages WHERE committed_at >= %s"
                            " AND kind = ANY(%s) GROUP BY kind",
                            (started[0] if started else None, list(SIGNALLED_KINDS))).fetchall()
    return DeleteFigures(deleted, report.figures["missed_soft_deletes"], report.figures["false_soft_deletes"],
                         {str(k): int(n) for k, n in rows}, dict(requests),
                         report.examples.get("missed_soft_deletes", []))


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    with local_services(tmp_dir) as services:
        client = redis.Redis.from_url(services.redis_url)
        with running_simulator(tmp_dir / "sim", projects=10, items=2000, rate_limit="off") as sim, \
                ConnectionPool(services.database_url, min_size=1, max_size=4) as pool:
            base = Settings.from_env({"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url,
                                      "EVA00_DATA_DIR": str(tmp_dir / "data")}, dotenv=None)
            settings = settings_for_simulator(base, api_base=sim.api_base, login_base=sim.login_base,
                                              client_id=sim.client_id, client_secret=sim.client_secret,
                                              company_id=sim.company_id)
            pipeline = LocalPipeline.build(settings, client, pool)
            pipeline.sync_everything()
            projects = pipeline.scheduler.live_project_ids()
            figures = quiet_interval(sim, pipeline, client, projects)
    extra = figures.extra_requests_per_poll
    return [
        {"name": f"missed deletes after one quiet interval ({figures.deleted_upstream} deleted upstream)",
         "value": figures.missed, "unit": "records", "goal": "== 0", "met": figures.missed == 0},
        {"name": "false soft deletes after one quiet interval", "value": figures.false, "unit": "records",
         "goal": "== 0", "met": figures.false == 0},
        {"name": "delete-signal requests per poll of a kind with a signal", "value": extra,
         "unit": "requests/poll", "goal": "<= 1.0", "met": extra <= 1.0},
    ]


if __name__ == "__main__":
    import tempfile

    for figure in run(Path(tempfile.mkdtemp(prefix="eva00-bench-deletes-"))):
        print(f"{figure['name']}: {figure['value']:.3f} {figure['unit']} (goal {figure['goal']})")
