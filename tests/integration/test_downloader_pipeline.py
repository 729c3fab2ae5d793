"""The whole file path against the simulator: a full pull creates a pending link per file field
(every drawing revision's PDF among them), the downloader stores each one, and every stored hash
equals the simulator's ground truth."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.proof.pipeline_local import LocalPipeline
from eva00.simulator.testing import SimHandle
from tests.integration.test_downloader import make_rig


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as opened:
        yield opened


def test_every_file_of_a_full_pull_is_stored_with_the_truths_hash(
        sim: SimHandle, settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
        database_url: str) -> None:
    rig = make_rig(sim, settings, redis_client, pool)
    pipeline = LocalPipeline.build(rig.settings, redis_client, pool)
    pipeline.sync_everything()
    rig.drain()
    with psycopg.connect(database_url) as conn:
        links = conn.execute("SELECT kind, procore_id, url_field, status, sha256"
                             " FROM record_files").fetchall()
        revisions = conn.execute("SELECT count(*) FROM drawing_revisions").fetchone()
    assert links and {status for *_rest, status, _sha in links} == {"downloaded"}
    stored = {(kind, pid, field): sha for kind, pid, field, _status, sha in links}
    truth = {(f["kind_of_parent"], f["parent_id"], f["url_field"]): f["sha256"] for f in sim.truth()["files"]}
    drawings = {key: sha for key, sha in stored.items() if key[0] == "drawing_revision"}
    assert revisions and len(drawings) == revisions[0], "a drawing revision has no stored PDF"
    assert {key: truth.get(key) for key in stored} == stored
    assert sim.stats()["token_leaks"] == 0
