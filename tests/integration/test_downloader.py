"""The downloader stage against the simulator's API and storage hosts: dedup, resume, faults,
expiry, the disk guard, priorities and the reconciler. Every test ends by checking that the
storage host never saw the bearer token (it refuses any Authorization header and counts it)."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import psycopg
import pytest
import redis
import requests
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.config import Settings
from eva00.messages import FileJob, decode
from eva00.procore import build_client
from eva00.proof.pipeline_local import settings_for_simulator
from eva00.replica.filestore import FileStore
from eva00.runtime.stage import Stage
from eva00.simulator.testing import SimHandle, running_simulator
from eva00.stages.downloader import (
    DOWNLOAD_INPUTS,
    STREAM_FILES_BY_PRIORITY,
    DiskGuard,
    Downloader,
    DownloadSlots,
    Transfer,
    requeue_pending,
)

SIZE_BYTES = 600_000


@pytest.fixture(scope="module")
def files_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    with running_simulator(tmp_path_factory.mktemp("sim"), projects=1, items=50, rate_limit="off",
                           file_size_bytes=4096) as handle:
        yield handle


class FakeDisk:
    """shutil.disk_usage with a free share the test sets."""

    def __init__(self) -> None:
        self.free_ratio = 0.9
        self.checks = 0

    def __call__(self, path: Path) -> tuple[int, int, int]:
        self.checks += 1
        total = 1_000_000
        free = int(total * self.free_ratio)
        return total, total - free, free


class FullOnce:
    """Opens temp files whose writes fail with ENOSPC once, after ``after_bytes`` bytes."""

    def __init__(self, after_bytes: int) -> None:
        self.left = after_bytes
        self.fired = False

    def __call__(self, path: Path, mode: str) -> BinaryIO:
        return cast(BinaryIO, _Filling(cast(BinaryIO, path.open(mode)), self))


class _Filling:
    def __init__(self, handle: BinaryIO, budget: FullOnce) -> None:
        self.handle, self.budget = handle, budget

    def write(self, data: bytes) -> int:
        if not self.budget.fired and len(data) > self.budget.left:
            self.handle.write(data[:self.budget.left])
            self.budget.fired = True
            raise OSError(errno.ENOSPC, "No space left on device")
        self.budget.left -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def __enter__(self) -> _Filling:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


@dataclass
class Rig:
    sim: SimHandle
    settings: Settings
    pool: ConnectionPool
    redis: redis.Redis
    store: FileStore
    disk: FakeDisk
    downloader: Downloader
    stage: Stage
    sleeps: list[Callable[[], None]] = field(default_factory=list)

    def link(self, url: str, *, kind: str = "rfi", procore_id: int = 1,
             url_field: str = "attachments[id=1].url", version: str = "", priority: int = 2) -> int:
        with self.pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO record_files (kind, procore_id, project_id, url_field, procore_file_id,"
                " procore_version_id, source_url) VALUES (%s, %s, 10, %s, '', %s, %s) RETURNING id",
                (kind, procore_id, url_field, version, url)).fetchone()
        job = FileJob(kind=kind, procore_id=procore_id, project_id=10, url_field=url_field, url=url,
                      procore_version_id=version, priority=priority)
        self.redis.xadd(keys.file_stream(priority), job.to_fields())  # type: ignore[arg-type]
        assert row is not None
        return int(row[0])

    def drain(self) -> None:
        quiet = 0
        for _ in range(200):
            handled = self.stage.step()
            quiet = quiet + 1 if handled == 0 else 0
            if quiet >= 2:
                return
        raise AssertionError("the downloader never went quiet")

    def row(self, link_id: int) -> dict[str, Any]:
        with self.pool.connection() as conn:
            found = conn.execute("SELECT status, sha256, attempts, last_error FROM record_files"
                                 " WHERE id = %s", (link_id,)).fetchone()
        assert found is not None
        return dict(zip(("status", "sha256", "attempts", "last_error"), found, strict=True))

    def retry(self) -> None:
        with self.pool.connection() as conn:
            requeue_pending(conn, self.redis, older_than_s=0)
        self.drain()

    def truth_sha256(self, file_id: int) -> str:
        answer = requests.get(f"{self.sim.api_base}/_sim/files/{file_id}", timeout=30).json()
        return str(answer["sha256"])

    def stored_paths(self) -> list[Path]:
        return sorted(p for p in self.store.root.rglob("*") if p.is_file())


def make_rig(sim: SimHandle, settings: Settings, redis_client: redis.Redis, pool: ConnectionPool,
             opener: Any = None) -> Rig:
    configured = settings_for_simulator(settings, api_base=sim.api_base, login_base=sim.login_base,
                                        client_id=sim.client_id, client_secret=sim.client_secret,
                                        company_id=sim.company_id)
    disk = FakeDisk()
    store = FileStore(configured.data_dir, min_free_ratio=0.2, disk_usage=disk)
    options: dict[str, Any] = {"opener": opener} if opener else {}
    transfer = Transfer(build_client(configured, redis_client, pool), store, check_space=store.check_space,
                        chunk_bytes=64 * 1024, **options)
    sleeps: list[Callable[[], None]] = []

    def sleep(_seconds: float) -> None:
        if sleeps:
            sleeps.pop(0)()

    downloader = Downloader(transfer, store, DownloadSlots(redis_client, 3, poll_s=0.01),
                            DiskGuard(store, pool, poll_s=0.0, sleep=sleep), max_attempts=3)
    stage = Stage("downloader", configured.replace(stream_batch=1), redis_client, pool, DOWNLOAD_INPUTS,
                  downloader, consumer="downloader-test")
    return Rig(sim, configured, pool, redis_client, store, disk, downloader, stage, sleeps)


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    with ConnectionPool(database_url, min_size=1, max_size=4, open=True) as opened:
        yield opened


@pytest.fixture
def rig(files_sim: SimHandle, settings: Settings, redis_client: redis.Redis,
        pool: ConnectionPool) -> Iterator[Rig]:
    yield make_rig(files_sim, settings, redis_client, pool)


@pytest.fixture(autouse=True)
def _storage_never_sees_the_token(files_sim: SimHandle) -> Iterator[None]:
    yield
    files_sim.clear_faults()
    files_sim.configure(signed_url_ttl_s=3600)
    assert files_sim.stats()["token_leaks"] == 0, "the bearer token reached the storage host"


def storage_entries(sim: SimHandle, since: int, file_id: int) -> list[dict[str, Any]]:
    return [e for e in sim.ledger(since_seq=since)
            if e["host"] == "storage" and e["path"].endswith(f"/{file_id}")]


def last_seq(sim: SimHandle) -> int:
    return max((e["seq"] for e in sim.ledger()), default=0)


def test_a_file_is_stored_under_its_sha256_and_announced_downstream(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    link = rig.link(made["url"])
    rig.drain()
    row = rig.row(link)
    sha256 = rig.truth_sha256(made["file_id"])
    assert (row["status"], row["sha256"]) == ("downloaded", sha256)
    assert rig.stored_paths() == [rig.store.root / sha256[:2] / sha256[2:4] / sha256]
    with rig.pool.connection() as conn:
        assert conn.execute("SELECT size_bytes, content_type FROM files").fetchall() == [
            (SIZE_BYTES, "application/pdf")]
    entries: Any = rig.redis.xrange(keys.STREAM_INGEST)
    ingest = [decode(fields) for _id, fields in entries]
    assert [(e.what, e.sha256) for e in ingest] == [("file", sha256)]  # type: ignore[attr-defined]
    assert rig.redis.xlen(keys.STREAM_THUMBNAILS) == 1 and rig.redis.xlen(keys.STREAM_TEXT) == 1
    assert not list(rig.store.tmp.iterdir()), "a temp file or resume state was left behind"


def test_the_same_bytes_under_two_records_are_stored_once(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "jpeg")
    first = rig.link(made["url"], kind="image", procore_id=1, url_field="url", priority=4)
    second = rig.link(made["url"], kind="submittal", procore_id=2, priority=1)
    rig.drain()
    assert rig.row(first)["sha256"] == rig.row(second)["sha256"] == rig.truth_sha256(made["file_id"])
    assert len(rig.stored_paths()) == 1
    with rig.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM files").fetchone() == (1,)


def test_an_interrupted_download_resumes_with_a_range_request(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    rig.sim.set_faults("truncate", count=1, host="storage")
    since = last_seq(rig.sim)
    link = rig.link(made["url"])
    rig.drain()
    assert rig.row(link)["status"] == "pending" and rig.row(link)["attempts"] == 1
    kept = (rig.store.tmp / f"dl-rf{link}").stat().st_size
    assert 0 < kept < SIZE_BYTES
    rig.retry()
    assert rig.row(link)["sha256"] == rig.truth_sha256(made["file_id"])
    answers = [(e["status"], e["bytes"]) for e in storage_entries(rig.sim, since, made["file_id"])]
    assert answers[-1] == (206, SIZE_BYTES - kept), answers
    assert sum(sent for _status, sent in answers) <= SIZE_BYTES * 1.05 + kept


def test_a_changed_etag_during_a_resume_starts_over_with_the_new_content(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    rig.sim.set_faults("truncate", count=1, host="storage")
    link = rig.link(made["url"])
    rig.drain()
    before = rig.truth_sha256(made["file_id"])
    rig.sim.set_faults("etag_change", count=1, host="storage")
    since = last_seq(rig.sim)
    rig.retry()
    after = rig.truth_sha256(made["file_id"])
    assert after != before and rig.row(link)["sha256"] == after
    assert [e["status"] for e in storage_entries(rig.sim, since, made["file_id"])] == [200]


def test_a_server_ignoring_range_makes_the_download_start_from_zero(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "png")
    rig.sim.set_faults("truncate", count=1, host="storage")
    link = rig.link(made["url"], kind="image", url_field="url", priority=4)
    rig.drain()
    rig.sim.set_faults("ignore_range", count=1, host="storage")
    since = last_seq(rig.sim)
    rig.retry()
    assert rig.row(link)["sha256"] == rig.truth_sha256(made["file_id"])
    assert [(e["status"], e["bytes"]) for e in storage_entries(rig.sim, since, made["file_id"])] == [
        (200, SIZE_BYTES)]


def test_a_wrong_content_length_fails_the_attempt_and_the_file_still_verifies(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    rig.sim.set_faults("wrong_length", count=1, host="storage")
    link = rig.link(made["url"])
    rig.drain()
    assert rig.row(link)["status"] == "pending" and "interrupted" in rig.row(link)["last_error"]
    assert rig.stored_paths() == []
    rig.retry()
    assert rig.row(link)["sha256"] == rig.truth_sha256(made["file_id"])


def test_an_expired_signed_url_is_resolved_again_through_the_file_host(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    rig.sim.set_faults("truncate", count=1, host="storage")
    link = rig.link(made["url"])
    rig.drain()
    # The kept signed URL expires: the server's clock passes its expiry (waiting on the host's
    # clock instead would race a busy machine, where a 1 s URL can expire before its first use).
    rig.sim.configure(clock_offset_s=rig.sim.configure()["signed_url_ttl_s"] + 60)
    since = last_seq(rig.sim)
    rig.retry()
    assert rig.row(link)["sha256"] == rig.truth_sha256(made["file_id"])
    calls = [(e["host"], e["status"]) for e in rig.sim.ledger(since_seq=since)
             if e["path"].endswith(f"/{made['file_id']}") or "/files/" in e["path"]]
    assert calls == [("storage", 403), ("files", 302), ("storage", 206)], calls


def test_a_link_whose_fresh_signed_url_is_refused_is_marked_expired(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    rig.sim.configure(signed_url_ttl_s=-60)
    link = rig.link(made["url"])
    rig.drain()
    row = rig.row(link)
    assert row["status"] == "expired" and "freshly signed" in row["last_error"]
    assert "sig=" not in row["last_error"], "a signature was written into last_error"


def test_a_link_failing_every_attempt_is_marked_failed_with_its_last_error(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    rig.sim.set_faults("5xx", host="storage")
    link = rig.link(made["url"])
    rig.drain()
    rig.retry()
    rig.retry()
    row = rig.row(link)
    assert (row["status"], row["attempts"]) == ("failed", 3) and "answered 5" in row["last_error"]
    assert not list(rig.store.tmp.iterdir())


def test_a_new_file_version_keeps_the_old_file_in_its_own_link(rig: Rig) -> None:
    old, new = rig.sim.new_file(SIZE_BYTES, "pdf"), rig.sim.new_file(SIZE_BYTES, "pdf")
    first = rig.link(old["url"], kind="document", url_field="file.current_version.url", version="1")
    second = rig.link(new["url"], kind="document", url_field="file.current_version.url", version="2")
    rig.drain()
    assert {rig.row(first)["sha256"], rig.row(second)["sha256"]} == {
        rig.truth_sha256(old["file_id"]), rig.truth_sha256(new["file_id"])}
    assert len(rig.stored_paths()) == 2


def test_submittals_are_downloaded_before_photos_queued_earlier(rig: Rig) -> None:
    photo = rig.link(rig.sim.new_file(SIZE_BYTES, "jpeg")["url"], kind="image", url_field="url", priority=4)
    submittal = rig.link(rig.sim.new_file(SIZE_BYTES, "pdf")["url"], kind="submittal", priority=1)
    rig.stage.step()
    assert rig.row(submittal)["status"] == "downloaded" and rig.row(photo)["status"] == "pending"


def test_a_low_disk_pauses_downloads_under_a_critical_alert_until_space_returns(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    rig.disk.free_ratio = 0.05
    seen: list[Any] = []

    def while_paused() -> None:
        with psycopg.connect(rig.settings.effective_database_url) as conn:
            seen.append(conn.execute("SELECT severity, status FROM alerts WHERE alert_key = 'disk-low:files'"
                                     ).fetchone())
        assert rig.stored_paths() == [] and not list(rig.store.tmp.iterdir())
        rig.disk.free_ratio = 0.5

    rig.sleeps.append(while_paused)
    link = rig.link(made["url"])
    rig.drain()
    assert seen == [("critical", "open")]
    assert rig.row(link)["status"] == "downloaded"
    with rig.pool.connection() as conn:
        assert conn.execute("SELECT status FROM alerts WHERE alert_key = 'disk-low:files'").fetchall() == [
            ("resolved",)]


def test_a_disk_full_mid_write_leaves_no_file_at_a_final_path_and_resumes(
        files_sim: SimHandle, settings: Settings, redis_client: redis.Redis, pool: ConnectionPool) -> None:
    full = FullOnce(after_bytes=200_000)
    rig = make_rig(files_sim, settings, redis_client, pool, opener=full)
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    rig.disk.free_ratio = 0.9

    def while_full() -> None:
        assert rig.stored_paths() == []
        rig.disk.free_ratio = 0.9

    # ENOSPC -> the guard sees a low disk once (the alert opens), then space returns.
    original = rig.downloader.guard.disk_low

    def disk_low(reason: str) -> None:
        rig.disk.free_ratio = 0.01
        original(reason)

    rig.downloader.guard.disk_low = disk_low  # type: ignore[method-assign]
    rig.sleeps.append(while_full)
    since = last_seq(rig.sim)
    link = rig.link(made["url"])
    rig.drain()
    assert full.fired and rig.row(link)["sha256"] == rig.truth_sha256(made["file_id"])
    assert [e["status"] for e in storage_entries(rig.sim, since, made["file_id"])] == [200, 206]
    with rig.pool.connection() as conn:
        assert conn.execute("SELECT severity, status FROM alerts").fetchall() == [("critical", "resolved")]


def test_file_names_from_procore_never_become_paths(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    link = rig.link(made["url"], kind="rfi", url_field="attachments[id=../../../../etc/passwd].url")
    rig.drain()
    assert rig.row(link)["status"] == "downloaded"
    data_dir = rig.store.root.parent
    for path in data_dir.rglob("*"):
        relative = path.relative_to(data_dir).parts
        assert relative[0] in ("files", "tmp"), path
        if path.is_file():
            assert relative[0] == "files" and len(relative[-1]) == 64, path
    with pytest.raises(ValueError):
        rig.downloader.transfer.fetch(made["url"], "../evil", budget="scheduled")


def test_the_reconciler_requeues_pending_links_after_redis_loses_their_jobs(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    link = rig.link(made["url"], kind="submittal", priority=1)
    rig.redis.flushall()
    with rig.pool.connection() as conn:
        assert requeue_pending(conn, rig.redis, older_than_s=3600) == 0
        assert requeue_pending(conn, rig.redis, older_than_s=0) == 1
        assert requeue_pending(conn, rig.redis, older_than_s=60) == 0, "requeued twice in one window"
    assert rig.redis.xlen(keys.file_stream(1)) == 1
    rig.drain()
    assert rig.row(link)["sha256"] == rig.truth_sha256(made["file_id"])


def test_the_reconciler_leaves_links_still_queued_behind_a_backlog_alone(rig: Rig) -> None:
    queued = rig.link("http://example.invalid/a", procore_id=1)  # still undelivered on its stream
    lost = rig.link("http://example.invalid/b", procore_id=2)
    for stream in STREAM_FILES_BY_PRIORITY:
        entries = rig.redis.xrange(stream)
        for entry_id, fields in entries:
            if decode(fields).procore_id == 2:  # type: ignore[attr-defined]
                rig.redis.xdel(stream, entry_id)  # only the second link's job is lost
    before = sum(rig.redis.xlen(s) for s in STREAM_FILES_BY_PRIORITY)
    with rig.pool.connection() as conn:
        assert requeue_pending(conn, rig.redis, older_than_s=0) == 1
    assert sum(rig.redis.xlen(s) for s in STREAM_FILES_BY_PRIORITY) == before + 1
    assert {rig.row(queued)["status"], rig.row(lost)["status"]} == {"pending"}


def test_a_duplicate_job_for_a_link_another_downloader_holds_is_acknowledged_without_a_download(
        rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    since = last_seq(rig.sim)
    with psycopg.connect(rig.settings.effective_database_url) as holder:
        link = rig.link(made["url"])
        holder.execute("SELECT 1 FROM record_files WHERE id = %s FOR UPDATE", (link,))
        rig.drain()
        holder.rollback()
    assert rig.row(link)["status"] == "pending"
    assert storage_entries(rig.sim, since, made["file_id"]) == []
    assert rig.redis.xpending(keys.file_stream(2), keys.GROUP_DOWNLOADERS)["pending"] == 0


def test_a_job_for_a_stored_link_downloads_nothing_again(rig: Rig) -> None:
    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    link = rig.link(made["url"])
    rig.drain()
    since = last_seq(rig.sim)
    job = FileJob(kind="rfi", procore_id=1, project_id=10, url_field="attachments[id=1].url", url=made["url"],
                  priority=2)
    rig.redis.xadd(keys.file_stream(job.priority), job.to_fields())  # type: ignore[arg-type]
    rig.drain()
    assert rig.row(link)["attempts"] == 1
    assert storage_entries(rig.sim, since, made["file_id"]) == []
    assert rig.redis.xlen(keys.STREAM_INGEST) == 2  # the redelivery announces what the row says


def test_a_procore_outage_is_waited_out_without_using_up_the_jobs_deliveries(
        rig: Rig, redis_client: redis.Redis) -> None:
    from eva00.procore.errors import ProcoreUnavailable

    made = rig.sim.new_file(SIZE_BYTES, "pdf")
    real_fetch = rig.downloader.transfer.fetch
    outages = [ProcoreUnavailable("circuit open: Procore calls held back (files)", delay_s=0.05)
               for _ in range(8)]  # more than EVA00_MAX_DELIVERIES (3 here)

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if outages:
            raise outages.pop()
        return real_fetch(*args, **kwargs)

    rig.downloader.transfer.fetch = flaky  # type: ignore[method-assign]
    link = rig.link(made["url"])
    rig.drain()
    assert outages == []
    row = rig.row(link)
    assert row["status"] == "downloaded" and row["sha256"] == rig.truth_sha256(made["file_id"])
    assert row["attempts"] == 1, "an outage is no attempt"
    assert redis_client.xlen(keys.STREAM_DEAD_LETTERS) == 0
