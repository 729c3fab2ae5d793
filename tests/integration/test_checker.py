"""The replica checker against real services: a correct replica passes with every figure 0, and each
injected fault moves exactly its own figure (and, where one fault is necessarily two, both).

One synced world (simulator, database, file store) is built once for the module; each test gets a
clone of its database (CREATE DATABASE ... TEMPLATE) and a copy of its files, so faults never
leak between tests. Tests that must change the simulator itself start their own small one.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.messages import StoredFileJob
from eva00.proof.checker.run import FIGURES, CheckReport, SimulatorView, check, simulator_at
from eva00.proof.pipeline_local import LocalPipeline, settings_for_simulator
from eva00.replica.filestore import FileStore
from eva00.runtime.stage import Stage, accepting
from eva00.simulator.testing import SimHandle, running_simulator
from eva00.stages.downloader import DOWNLOAD_INPUTS, build_downloader
from eva00.stages.text_extractor import TextExtractor
from eva00.stages.thumbnailer import Thumbnailer
from tests.conftest import Stack

WORLD = {"projects": 2, "items": 120, "rate_limit": "off", "file_size_bytes": 4096}


def sync_world(sim: SimHandle, settings: Settings, client: redis.Redis) -> None:
    """Everything a quiet production stack would have done: records, files, thumbnails, text."""
    configured = settings_for_simulator(settings, api_base=sim.api_base, login_base=sim.login_base,
                                        client_id=sim.client_id, client_secret=sim.client_secret,
                                        company_id=sim.company_id)
    with ConnectionPool(configured.effective_database_url, min_size=1, max_size=4, open=True) as pool:
        pipeline = LocalPipeline.build(configured, client, pool)
        pipeline.sync_everything()
        store = FileStore(configured.data_dir, min_free_ratio=0.0)
        downloader = build_downloader(configured, client, pool)
        stages = [Stage("downloader", configured, client, pool, DOWNLOAD_INPUTS, downloader,
                        consumer="downloader-check"),
                  Stage("thumbnailer", configured, client, pool,
                        [(keys.STREAM_THUMBNAILS, keys.GROUP_THUMBNAILERS)],
                        accepting(StoredFileJob)(Thumbnailer(store)), consumer="thumbnailer-check"),
                  Stage("text", configured, client, pool, [(keys.STREAM_TEXT, keys.GROUP_TEXT)],
                        accepting(StoredFileJob)(TextExtractor(store)), consumer="text-check")]
        for stage in stages:
            for stream, group in stage.inputs:
                stage.bus.ensure_group(stream, group)
        quiet = 0
        while quiet < 2:
            quiet = quiet + 1 if sum(stage.step() for stage in stages) == 0 else 0


def world_settings(database_url: str, redis_url: str, data_dir: Path) -> Settings:
    return Settings.from_env({"DATABASE_URL": database_url, "REDIS_URL": redis_url,
                              "EVA00_DATA_DIR": str(data_dir), "EVA00_VAR_DIR": str(data_dir.parent / "var"),
                              "EVA00_STREAM_BLOCK_MS": "10", "EVA00_MAX_DELIVERIES": "3"}, dotenv=None)


@dataclass
class World:
    sim: SimHandle
    settings: Settings
    database: str
    report: CheckReport  # taken as the sync left Redis: groups in place, every entry acknowledged


@pytest.fixture(scope="module")
def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("checker-world")
    name = "chk_" + uuid.uuid4().hex[:12]
    with psycopg.connect(stack.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE eva00_template")
    client = redis.Redis.from_url(stack.redis_admin_url)
    client.flushall()
    try:
        with running_simulator(base / "sim", **WORLD) as sim:
            settings = world_settings(stack.database_url(name), stack.redis_url, base / "data")
            sync_world(sim, settings, client)
            yield World(sim, settings, name, check(settings, sim, client))
    finally:
        client.close()
        with psycopg.connect(stack.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Replica:
    """One test's copy of the world: its own database and file store, an empty Redis."""
    sim: SimHandle
    settings: Settings
    redis: redis.Redis
    owner_url: str  # the faults below need the schema's owner (the app role may not disable a guard)

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.owner_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def check(self, **options: Any) -> CheckReport:
        return check(self.settings, self.sim, self.redis, **options)

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in (self.settings.data_dir / "files").rglob("*") if p.is_file())


@pytest.fixture
def replica(world: World, stack: Stack, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Replica]:
    name = "chk_" + uuid.uuid4().hex[:12]
    with psycopg.connect(stack.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {world.database}")
    shutil.copytree(world.settings.data_dir, tmp_path / "data")
    settings = world.settings.replace(database_url=stack.database_url(name), data_dir=tmp_path / "data")
    yield Replica(world.sim, settings, redis_client, stack.owner_url(name))
    with psycopg.connect(stack.admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def only(report: CheckReport, *figures: str) -> None:
    assert report.failing == list(figures), report.table()


# --- a correct replica ---

def test_a_synced_stack_passes_with_its_streams_fully_acknowledged(world: World) -> None:
    assert world.report.passed, world.report.table()


def test_a_correct_replica_passes_with_every_figure_zero(replica: Replica) -> None:
    report = replica.check()
    assert report.passed, report.table()
    assert list(report.figures) == list(FIGURES) and set(report.figures.values()) == {0}
    assert replica.files, "the world stored no file, so the file figures prove nothing"
    assert replica.sql("SELECT count(*) FROM record_files WHERE status = 'downloaded'")[0][0] > 0
    assert report.to_dict() == {"passed": True, "figures": dict.fromkeys(FIGURES, 0), "examples": {}}


def test_the_checker_reaches_a_simulator_it_did_not_start_through_its_url(replica: Replica) -> None:
    remote: SimulatorView = simulator_at(replica.sim.api_base)
    assert check(replica.settings, remote, replica.redis).passed


def test_eva00_check_exits_0_on_a_pass_and_1_with_the_failing_figure_in_its_json(
        replica: Replica, capsys: pytest.CaptureFixture[str]) -> None:
    from eva00.cli.check import main

    assert main(["--sim-url", replica.sim.api_base], settings=replica.settings) == 0
    assert "PASS" in capsys.readouterr().out
    replica.sql("UPDATE rfis SET is_deleted = true WHERE procore_id = (SELECT min(procore_id) FROM rfis)")
    assert main(["--json", "--sim-url", replica.sim.api_base], settings=replica.settings) == 1
    answer = json.loads(capsys.readouterr().out)
    assert answer["passed"] is False and answer["figures"]["false_soft_deletes"] == 1


# --- records ---

ROW_COLUMNS = " (kind, procore_id, project_id, payload, payload_hash, fetched_at, source)"


def first_rfi(replica: Replica) -> tuple[int, int]:
    (found,) = replica.sql("SELECT procore_id, project_id FROM rfis ORDER BY procore_id LIMIT 1")
    return found[0], found[1]


def test_a_changed_payload_hash_is_a_stale_record(replica: Replica) -> None:
    rfi, project = first_rfi(replica)
    replica.sql("UPDATE rfis SET payload_hash = 'f00d' WHERE procore_id = %s", (rfi,))
    report = replica.check()
    only(report, "stale_records")
    assert report.figures["stale_records"] == 1
    assert report.examples["stale_records"][0].startswith(f"rfi {rfi} in project {project}: replica f00d")


def test_a_row_the_simulator_does_not_know_is_unexpected(replica: Replica) -> None:
    replica.sql("INSERT INTO rfis" + ROW_COLUMNS + " SELECT kind, 999999999, project_id, payload, 'beef',"
                " fetched_at, source FROM rfis LIMIT 1")
    report = replica.check()
    only(report, "unexpected_records")
    assert "rfi 999999999" in report.examples["unexpected_records"][0]


def test_a_soft_delete_of_a_live_record_is_a_false_soft_delete(replica: Replica) -> None:
    rfi, _project = first_rfi(replica)
    replica.sql("UPDATE rfis SET is_deleted = true, deleted_at = now() WHERE procore_id = %s", (rfi,))
    report = replica.check()
    only(report, "false_soft_deletes")
    assert report.examples["false_soft_deletes"][0].startswith(f"rfi {rfi}")


def test_a_lost_version_row_is_a_missing_version(replica: Replica) -> None:
    rfi, _project = first_rfi(replica)
    # record_versions refuses DELETE; rewriting the hash loses the row for the current payload all the same.
    replica.sql("UPDATE record_versions SET payload_hash = 'lost-' || payload_hash"
                " WHERE kind = 'rfi' AND procore_id = %s", (rfi,))
    report = replica.check()
    only(report, "missing_versions")
    assert report.examples["missing_versions"][0].startswith(f"rfi {rfi} project")


def test_the_schema_refuses_a_hard_delete_and_the_checker_finds_one_forced_past_it(replica: Replica) -> None:
    rfi, _project = first_rfi(replica)
    with pytest.raises(psycopg.errors.RestrictViolation, match="never deleted"):
        replica.sql("DELETE FROM rfis WHERE procore_id = %s", (rfi,))
    replica.sql("ALTER TABLE rfis DISABLE TRIGGER rfis_no_delete")
    replica.sql("DELETE FROM rfis WHERE procore_id = %s", (rfi,))
    report = replica.check()
    # The record is alive in the simulator, so the vanished row is also a missing record.
    only(report, "missing_records", "hard_deletes")
    assert report.figures["hard_deletes"] == 1
    assert report.examples["hard_deletes"] == [f"rfi {rfi} project {_project} gone from rfis"]


def test_the_unique_index_refuses_an_exact_duplicate(replica: Replica) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation):
        replica.sql("INSERT INTO rfis" + ROW_COLUMNS + " SELECT " + ROW_COLUMNS.strip(" ()")
                    + " FROM rfis LIMIT 1")
    assert replica.check().passed


def test_a_project_stored_twice_under_two_project_ids_is_a_duplicate_row(replica: Replica) -> None:
    # The unique index keys on coalesce(project_id, 0), so a project held once with its own id and
    # once with NULL gets past it, yet both rows are the one record (the project id of a project
    # is 0 in the record key).
    replica.sql("INSERT INTO projects" + ROW_COLUMNS + " SELECT kind, procore_id,"
                " CASE WHEN project_id IS NULL THEN procore_id END, payload, payload_hash, fetched_at, source"
                " FROM projects ORDER BY procore_id LIMIT 1")
    report = replica.check()
    only(report, "duplicate_rows")
    assert report.figures["duplicate_rows"] == 1
    assert report.examples["duplicate_rows"][0].endswith(": 2 rows (projects.project_id=null, "
                                                         "projects.project_id=10001)")


def test_changes_in_the_simulator_not_yet_synced_are_missing_stale_and_missed_deletes(
        sim_factory: Callable[..., SimHandle], settings: Settings, redis_client: redis.Redis) -> None:
    sim = sim_factory(projects=1, items=40)
    sync_world(sim, settings, redis_client)
    assert check(settings, sim, redis_client).passed
    created = sim.mutate("create", "rfi")
    updated = sim.mutate("update", "submittal")
    deleted = sim.mutate("delete", "meeting")
    report = check(settings, sim, redis_client)
    only(report, "missing_records", "stale_records", "missed_soft_deletes")
    assert [report.figures[name] for name in report.failing] == [1, 1, 1]
    assert report.examples["missing_records"][0].startswith(f"rfi {created[0]['id']}")
    assert report.examples["stale_records"][0].startswith(f"submittal {updated[0]['id']}")
    assert report.examples["missed_soft_deletes"][0].startswith(f"meeting {deleted[0]['id']}")


# --- files ---

@pytest.mark.parametrize("damage", ["corrupted", "removed"])
def test_stored_bytes_that_do_not_hash_to_their_name_or_are_gone_are_sha_mismatches(
        replica: Replica, damage: str) -> None:
    victim = replica.files[0]
    if damage == "corrupted":
        victim.write_bytes(b"not the bytes that were stored")
    else:
        victim.unlink()
    report = replica.check()
    only(report, "file_sha_mismatches")
    assert victim.name[:12] in report.examples["file_sha_mismatches"][0]


def test_a_partial_file_next_to_a_final_path_is_a_temp_file(replica: Replica) -> None:
    final = replica.files[0]
    final.with_name(final.name + ".part").write_bytes(b"half")
    report = replica.check()
    only(report, "temp_files")
    assert ".part is not a final file" in report.examples["temp_files"][0]


def test_a_resumable_temp_of_a_link_already_stored_is_a_temp_file_but_one_of_a_pending_link_is_not(
        replica: Replica) -> None:
    (done,), (pending,) = replica.sql(
        "SELECT id FROM record_files WHERE status = 'downloaded' ORDER BY id LIMIT 2")
    replica.sql("UPDATE record_files SET status = 'pending' WHERE id = %s", (pending,))
    tmp = replica.settings.data_dir / "tmp"
    (tmp / f"dl-rf{done}").write_bytes(b"partial")
    (tmp / f"dl-rf{pending}").write_bytes(b"partial")
    report = replica.check()
    only(report, "temp_files", "file_records_not_downloaded")
    assert report.figures["temp_files"] == 1
    assert report.examples["temp_files"] == [f"{tmp}/dl-rf{done} belongs to link {done}, which is downloaded"]


def test_a_link_left_pending_is_not_downloaded_but_one_expired_with_its_reason_is_forgiven(
        replica: Replica) -> None:
    (first,), (second,) = replica.sql("SELECT id FROM record_files ORDER BY id LIMIT 2")
    replica.sql("UPDATE record_files SET status = 'expired', last_error = 'signed URL expired'"
                " WHERE id = %s", (second,))
    assert replica.check().passed
    replica.sql("UPDATE record_files SET status = 'pending' WHERE id = %s", (first,))
    report = replica.check()
    only(report, "file_records_not_downloaded")
    assert report.examples["file_records_not_downloaded"][0].startswith(f"link {first} ")


# --- Redis ---

def test_entries_nobody_acknowledged_or_read_are_pending_stream_entries(replica: Replica) -> None:
    client = replica.redis
    client.xgroup_create(keys.STREAM_PAGES, keys.GROUP_DIFFERS, id="0", mkstream=True)
    client.xadd(keys.STREAM_PAGES, {"v": "1", "probe": "read, never acked"})
    client.xadd(keys.STREAM_PAGES, {"v": "1", "probe": "never read"})
    client.xreadgroup(keys.GROUP_DIFFERS, "crashed", {keys.STREAM_PAGES: ">"}, count=1)
    client.xadd(keys.STREAM_THUMBNAILS, {"v": "1", "probe": "its group does not exist yet"})
    report = replica.check()
    only(report, "pending_stream_entries")
    assert report.figures["pending_stream_entries"] == 3
    assert report.examples["pending_stream_entries"] == [
        f"{keys.STREAM_PAGES} / {keys.GROUP_DIFFERS}: 1 pending, 1 undelivered",
        f"{keys.STREAM_THUMBNAILS} / {keys.GROUP_THUMBNAILERS} (missing): 0 pending, 1 undelivered"]


def test_a_dead_letter_counts_once_unless_declared_expected(replica: Replica) -> None:
    replica.sql("INSERT INTO dead_letters (stream, group_name, message_id, fields, error, deliveries)"
                " VALUES (%s, %s, '1-1', '{\"kind\": \"rfi\"}', 'poison: injected', 3)",
                (keys.STREAM_PAGES, keys.GROUP_DIFFERS))
    # Written to both, as Stage does: still one dead letter.
    replica.redis.xadd(keys.STREAM_DEAD_LETTERS, {"kind": "rfi", "dl_stream": keys.STREAM_PAGES,
                                                  "dl_group": keys.GROUP_DIFFERS, "dl_id": "1-1",
                                                  "dl_error": "poison: injected", "dl_deliveries": "3"})
    report = replica.check()
    only(report, "unexpected_dead_letters")
    assert report.figures["unexpected_dead_letters"] == 1
    assert "poison: injected" in report.examples["unexpected_dead_letters"][0]
    assert replica.check(expected_dead_letters=lambda letter: "injected" in letter["error"]).passed
    assert replica.check(expected_dead_letter_count=1).passed


def test_a_dead_letter_only_in_the_stream_still_counts(replica: Replica) -> None:
    replica.redis.xadd(keys.STREAM_DEAD_LETTERS, {"dl_stream": keys.file_stream(1), "dl_id": "2-2",
                                                  "dl_error": "fatal: injected"})
    report = replica.check()
    only(report, "unexpected_dead_letters")
    assert "(stream," in report.examples["unexpected_dead_letters"][0]


# --- the simulator's rate limit ---

@dataclass
class Traffic:
    """The world's records with another simulator's requests: rate tests leave the world alone."""
    records: SimHandle
    requests_seen: SimHandle

    def truth(self, kinds: list[str] | None = None, project_id: int | None = None) -> dict[str, Any]:
        return self.records.truth(kinds, project_id)

    def ledger(self, since_seq: int = 0) -> list[dict[str, Any]]:
        return self.requests_seen.ledger(since_seq)

    def stats(self) -> dict[str, Any]:
        return self.requests_seen.stats()

    def tools_off(self) -> dict[str, list[int]]:
        return self.records.tools_off()


def hammer(sim: SimHandle, count: int) -> list[int]:
    headers = sim.headers()
    session = requests.Session()
    return [session.get(f"{sim.api_base}/rest/v1.0/projects", params={"company_id": sim.company_id},
                        headers=headers, timeout=30).status_code for _ in range(count)]


def test_requests_the_simulator_refused_for_its_limit_are_rate_limit_violations(
        replica: Replica, sim_factory: Callable[..., SimHandle]) -> None:
    limited = sim_factory(projects=1, items=10, rate_limit="5/2")
    statuses = hammer(limited, 12)
    assert statuses.count(429) >= 7
    report = check(replica.settings, Traffic(replica.sim, limited), replica.redis)
    only(report, "rate_limit_violations")
    assert report.figures["rate_limit_violations"] >= 7
    assert report.examples["rate_limit_violations"][0].startswith("simulator refused ")


def test_the_ledger_shows_a_burst_beyond_the_limit_even_when_the_simulator_let_it_through(
        replica: Replica, sim_factory: Callable[..., SimHandle]) -> None:
    lenient = sim_factory(projects=1, items=10)  # rate limits off: a limiter bug letting all through
    started = time.monotonic()
    assert set(hammer(lenient, 12)) == {200}
    assert time.monotonic() - started < 2.0, "too slow to put 12 requests in one 2 s window"
    assert check(replica.settings, Traffic(replica.sim, lenient), replica.redis).passed
    report = check(replica.settings, Traffic(replica.sim, lenient), replica.redis, rate_limit=(5, 2.0))
    only(report, "rate_limit_violations")
    assert report.figures["rate_limit_violations"] == 7
    assert "number 6 in the 2 s" in report.examples["rate_limit_violations"][1]
