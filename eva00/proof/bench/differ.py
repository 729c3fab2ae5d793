"""Benchmarks of the sync pipeline (issue 5): the differ's throughput with hashing and upserts, and
the API cost of a poll cycle in which nothing changed (one page per list, no show calls)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.messages import PageMessage, PollMode
from eva00.procore.endpoints import ENDPOINTS
from eva00.proof.bench.deletes import signal_kind
from eva00.proof.bench.services import local_services
from eva00.proof.pipeline_local import LocalPipeline, settings_for_simulator
from eva00.simulator.testing import running_simulator
from eva00.stages.differ import Differ

PAGE_ITEMS = 1000
PAGES = 20


def _rfi(rng: random.Random, rfi_id: int, revision: int) -> dict[str, Any]:
    vocabulary = ("beam", "slab", "grid", "rebar", "anchor", "duct", "level")
    words = " ".join(rng.choice(vocabulary) for _ in range(30))
    return {"id": rfi_id, "number": f"RFI-{rfi_id}", "subject": f"Clarify {words[:60]}", "status": "open",
            "question": {"body": words, "attachments": []}, "revision": revision,
            "assignees": [{"id": rng.randrange(1, 500), "name": "Ana Ruiz"}],
            "cost_impact": {"status": "tbd", "value": rng.randrange(0, 10_000)},
            "updated_at": f"2026-11-01T10:{revision:02d}:00Z", "created_at": "2026-10-01T08:00:00Z"}


def _pages(revision: int) -> list[PageMessage]:
    rng = random.Random(7)
    return [PageMessage(poll_id=f"bench-{revision}", kind="rfi", project_id=1, mode=PollMode.INCREMENTAL,
                        page=n + 1, fetched_at=f"2026-11-01T11:{revision:02d}:00Z",
                        items=[_rfi(rng, n * PAGE_ITEMS + i + 1, revision) for i in range(PAGE_ITEMS)],
                        is_last=n == PAGES - 1, pages_total=PAGES if n == PAGES - 1 else None,
                        complete=True, window_to="2026-11-01T11:00:00Z")
            for n in range(PAGES)]


def differ_items_per_s(database_url: str) -> tuple[float, float]:
    """(inserts per second, updates per second): each page is one transaction, as in the stage."""
    differ = Differ(mass_delete_ratio=0.1)
    rates = []
    with psycopg.connect(database_url) as conn:
        for revision in (1, 2):
            pages = _pages(revision)
            began = time.perf_counter()
            for page in pages:
                with conn.transaction():
                    differ.handle(conn, page)
            rates.append(PAGES * PAGE_ITEMS / (time.perf_counter() - began))
    return rates[0], rates[1]


def steady_cycle(tmp_dir: Path, database_url: str, redis_url: str) -> tuple[int, int, int]:
    """(API requests, polls, show calls) of a second poll cycle over the standard data set."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    with running_simulator(tmp_dir / "sim", projects=20, items=5000, rate_limit="off") as sim, \
            ConnectionPool(database_url, min_size=1, max_size=4) as pool:
        base = Settings.from_env({"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                                  "EVA00_DATA_DIR": str(tmp_dir / "data")}, dotenv=None)
        settings = settings_for_simulator(base, api_base=sim.api_base, login_base=sim.login_base,
                                          client_id=sim.client_id, client_secret=sim.client_secret,
                                          company_id=sim.company_id)
        pipeline = LocalPipeline.build(settings, client, pool)
        pipeline.sync_everything()
        seq = max(e["seq"] for e in sim.ledger())
        started = time.time()
        pipeline.poll_cycle()
        # The delete signals' one request per poll is measured by bench/deletes.py.
        calls = [e for e in sim.ledger(since_seq=seq) if e["host"] == "api" and "oauth" not in e["path"]
                 and signal_kind(e) is None]
        with psycopg.connect(database_url) as conn:
            polls = conn.execute("SELECT count(DISTINCT poll_id) FROM poll_pages WHERE committed_at"
                                 " >= to_timestamp(%s)", (started,)).fetchone()
        shows = [e for e in calls if e["path"].rstrip("/").split("/")[-1].isdigit()]
        # a parents' listing the spec requires first (spec-section divisions) is a poll of its own
        parent_paths = {spec.parent_listing.path for spec in ENDPOINTS.values() if spec.parent_listing}
        listings = sum(1 for e in calls if e["path"] in parent_paths)
        return len(calls), (int(polls[0]) if polls else 0) + listings, len(shows)


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    with local_services(tmp_dir) as services:
        inserts, updates = differ_items_per_s(services.database_url)
        requests_made, polls, shows = steady_cycle(tmp_dir, services.database_url, services.redis_admin_url)
    per_poll = requests_made / polls if polls else float("inf")
    return [
        {"name": "differ: new records stored per second (hash + upsert + history)", "value": inserts,
         "unit": "items/s", "goal": ">= 5000", "met": inserts >= 5000},
        {"name": "differ: changed records stored per second", "value": updates, "unit": "items/s",
         "goal": ">= 5000", "met": updates >= 5000},
        {"name": "steady poll cycle: API requests per poll (nothing changed; a divisions listing is a poll)",
         "value": per_poll,
         "unit": "requests/poll", "goal": "<= 1.0", "met": per_poll <= 1.0},
        {"name": "steady poll cycle: show calls (nothing changed)", "value": shows, "unit": "requests",
         "goal": "== 0", "met": shows == 0},
    ]


if __name__ == "__main__":
    import tempfile

    for figure in run(Path(tempfile.mkdtemp(prefix="eva00-bench-differ-"))):
        print(f"{figure['name']}: {figure['value']:.3f} {figure['unit']} (goal {figure['goal']})")
