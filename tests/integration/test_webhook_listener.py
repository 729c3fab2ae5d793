"""The listener end to end: the simulator's hooks API configured by `eva00 webhooks register`, its
real deliveries (duplicates, reordering, retries, wrong credentials) into the running listener,
and what lands in PostgreSQL (webhook_events) and Redis (eva00:sync:priority)."""

from __future__ import annotations

import dataclasses
import logging
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import requests
from psycopg_pool import ConnectionPool

from eva00 import keys
from eva00.cli import webhooks as cli
from eva00.config import Settings
from eva00.keys import webhook_debounce_key as debounce_key
from eva00.messages import PollJob, decode
from eva00.procore import build_client
from eva00.procore.limiter import LimiterConfig
from eva00.replica.records import FetchedRecord, upsert_records
from eva00.simulator.testing import SimHandle, running_simulator
from eva00.webhooks.auth import Authenticator, SecretFile
from eva00.webhooks.intake import Intake
from eva00.webhooks.options import SECRETS_FILE_NAME, WebhookOptions
from eva00.webhooks.register import ApiError, HooksApi
from eva00.webhooks.server import Listener, health_checks, listener_redis
from tests.integration.test_procore_auth import sim_settings

FETCHED = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
OTHER_NAMESPACE = "someone-else"
LOOSE = LimiterConfig(burst=200, refill_per_s=500.0, window_max=5000, window_s=2.0,
                      budget_window_s=2.0, reserve_slots=1, marker_ttl_s=0.6, max_sleep_s=0.2)


class Harness:
    """The simulator, a listener in this process, and the database and Redis it writes to."""

    def __init__(self, settings: Settings, sim: SimHandle, pool: ConnectionPool,
                 client: redis.Redis) -> None:
        self.settings, self.sim, self.pool, self.redis = settings, sim, pool, client
        self.options = dataclasses.replace(WebhookOptions.from_settings(settings), port=0,
                                           threads=4)
        self.listener: Listener | None = None
        self.thread: threading.Thread | None = None
        self.port = 0

    # --- the listener ---

    def start_listener(self, port: int = 0, hmac_secret: str = "") -> None:
        options = dataclasses.replace(self.options, port=port, hmac_secret=hmac_secret)
        auth = Authenticator(options.secrets, SecretFile(options.secrets_file, recheck_s=0.1),
                             options.hmac_secret)
        intake = Intake(options, listener_redis(self.settings.effective_redis_url), self.pool)
        self.listener = Listener(options, auth, intake, health_checks(self.pool, self.redis))
        self.port = self.listener.port
        self.thread = threading.Thread(target=self.listener.run, daemon=True)
        self.thread.start()

    def stop_listener(self) -> None:
        assert self.listener is not None and self.thread is not None
        self.listener.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/procore"

    # --- the hooks API ---

    def api(self) -> HooksApi:
        client = build_client(self.settings, self.redis, self.pool, limiter_config=LOOSE)

        def call(method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
            response = self.sim_call(client, method, path, params, json)
            return response.json() if response.content else None

        return HooksApi(call, self.settings.company_id, self.options.namespace)

    @staticmethod
    def sim_call(client: Any, method: str, path: str, params: Any, json: Any) -> Any:
        from eva00.procore.errors import ProcoreError

        try:
            return client.request(method, path, budget="on_demand", params=params, json=json)
        except ProcoreError as exc:
            raise ApiError(exc.status or 0, str(exc)) from None

    def hook(self) -> dict[str, Any]:
        [hook] = self.api().hooks()
        return hook

    def deliveries(self) -> list[dict[str, Any]]:
        return self.api().deliveries(int(self.hook()["id"]), limit=10_000)

    # --- what landed ---

    def events(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            cursor = conn.execute("SELECT event_key, status, resource_name, resource_id,"
                                  " project_id, event_type, api_version, detail"
                                  " FROM webhook_events ORDER BY id")
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def jobs(self) -> list[PollJob]:
        found = []
        for _entry, fields in self.redis.xrange(keys.STREAM_SYNC_PRIORITY):
            job = decode(fields)
            assert isinstance(job, PollJob)
            found.append(job)
        return found

    def settled(self, expected_successful: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Wait until the simulator has delivered this many events successfully, and no more."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.deliveries()
            done = [d for d in found if d["outcome"] == "ok"]
            if len(done) >= expected_successful and all(d["outcome"] == "ok" for d in found):
                return found
            time.sleep(0.1)
        raise AssertionError(f"deliveries did not settle: {Counter(d['outcome'] for d in found)}")

    def seed_replica(self, skip_project: int | None = None) -> list[int]:
        """The replica knows the simulator's projects (all but skip_project) and their RFIs."""
        truth = self.sim.truth(["project", "rfi"])["records"]

        def known(record: dict[str, Any]) -> bool:
            project = record["id"] if record["kind"] == "project" else record["project_id"]
            return not record["is_deleted"] and project != skip_project

        records = [FetchedRecord(r["kind"], r["id"], r["project_id"], {"id": r["id"]}, FETCHED, "api")
                   for r in truth if known(r)]
        with self.pool.connection() as conn:
            upsert_records(conn, records)
        return sorted(r["id"] for r in truth if r["kind"] == "project")


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.1)


def cli_environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    for name, value in {
        "PROCORE_API_BASE": settings.procore_api_base,
        "PROCORE_LOGIN_BASE": settings.procore_login_base, "EVA00_ALLOW_LOOPBACK_URLS": "1",
        "PROCORE_CLIENT_ID": settings.procore_client_id,
        "PROCORE_CLIENT_SECRET": settings.procore_client_secret,
        "PROCORE_COMPANY_ID": str(settings.procore_company_id),
        "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
        "EVA00_VAR_DIR": str(settings.var_dir), "EVA00_DATA_DIR": str(settings.data_dir),
        "EVA00_RATE_BURST": "200", "EVA00_RATE_REFILL_PER_S": "500",
        "EVA00_RATE_WINDOW_MAX": "5000", "EVA00_BUDGET_ON_DEMAND_PER_MIN": "5000",
    }.items():
        monkeypatch.setenv(name, value)


# Deliveries retry fast here; everything else as the simulator defaults.
WEBHOOK_DEFAULTS = {"duplicate_ratio": 0.0, "reorder_window_s": 0.0, "delay_s": 0.0,
                    "drop_ratio": 0.0, "hmac_secret": "", "retry_base_s": 0.2, "retry_cap_s": 0.5}


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimHandle]:
    """One simulator for the module (starting one costs a second); each test gets its own hook,
    database and Redis, and the webhook options are reset before it."""
    with running_simulator(tmp_path_factory.mktemp("sim"), projects=3, items=300,
                           rate_limit="off", spike="off", file_size_bytes=4096) as sim:
        yield sim


@pytest.fixture
def harness(settings: Settings, shared_sim: SimHandle, redis_client: redis.Redis,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    shared_sim.configure(webhooks=WEBHOOK_DEFAULTS)
    configured = sim_settings(settings, shared_sim)
    cli_environment(monkeypatch, configured)
    with ConnectionPool(configured.effective_database_url, min_size=1, max_size=8,
                        open=True) as pool:
        harness = Harness(configured, shared_sim, pool, redis_client)
        harness.start_listener()
        yield harness
        if harness.thread is not None and harness.thread.is_alive():
            harness.stop_listener()
        for namespace in (harness.options.namespace, OTHER_NAMESPACE):
            api = harness.api()
            api.namespace = namespace
            for hook in api.hooks():
                api.delete_hook(int(hook["id"]))


def register(harness: Harness, *extra: str) -> int:
    return cli.main(["register", "--url", harness.url, *extra])


def secret_of(harness: Harness) -> str:
    current = SecretFile(harness.options.secrets_file).current()
    assert current is not None
    return current


def test_register_creates_our_hook_with_every_trigger_and_a_private_secret(
        harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert register(harness) == 0
    hook = harness.hook()
    assert (hook["namespace"], hook["destination_url"], hook["api_version"]) == (
        "eva-sync", harness.url, "v4.0")  # Procore's recommended format for new integrations
    secret = secret_of(harness)
    assert hook["destination_headers"] == {"Authorization": secret}
    path = harness.settings.var_dir / SECRETS_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    triggers = {(t["resource_name"], t["event_type"].lower()) for t in harness.api().triggers(hook["id"])}
    assert {("RFIs", "create"), ("RFIs", "update"), ("RFIs", "delete"), ("Drawings", "create"),
            ("Daily Logs", "update"), ("Change Order Packages", "update"),
            ("Projects", "create"), ("Company Vendors", "update"), ("Tasks", "delete")} <= triggers
    assert ("Projects", "delete") not in triggers
    assert secret not in capsys.readouterr().out


def test_register_again_changes_nothing_and_keeps_one_hook(
        harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert register(harness) == 0
    first_hook, secret = harness.hook(), secret_of(harness)
    first_triggers = harness.api().triggers(first_hook["id"])
    capsys.readouterr()
    assert register(harness) == 0
    assert "0 created" in capsys.readouterr().out
    assert harness.hook()["id"] == first_hook["id"]
    assert harness.api().triggers(first_hook["id"]) == first_triggers
    assert secret_of(harness) == secret


def test_register_moves_the_hook_to_a_new_url_and_removes_duplicate_hooks(
        harness: Harness) -> None:
    api = harness.api()
    api.create_hook("https://old.example.com/webhooks/procore", "x", "v2.0")
    api.create_hook("https://older.example.com/webhooks/procore", "y", "v2.0")
    assert register(harness) == 0
    [hook] = api.hooks()
    assert hook["destination_url"] == harness.url
    assert hook["api_version"] == "v2.0"  # an existing hook keeps its payload format


def test_a_change_in_procore_becomes_one_recorded_event_and_one_queued_fetch(
        harness: Harness) -> None:
    harness.seed_replica()
    assert register(harness) == 0
    [change] = harness.sim.mutate("update", "rfi")
    harness.settled(1)
    [event] = harness.events()
    assert (event["resource_name"], event["resource_id"], event["project_id"],
            event["event_type"], event["status"]) == (
        "RFIs", change["id"], change["project_id"], "update", "enqueued")
    [job] = harness.jobs()
    assert (job.kind, job.project_id, job.item_id, job.mode, job.budget) == (
        "rfi", change["project_id"], change["id"], "item", "webhook")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("wrong-secret", id="wrong"),
        pytest.param("Bearer {secret}", id="padded with a scheme"),
        pytest.param("{secret}=", id="padded after"),
        pytest.param("{upper}", id="wrong case"),
        pytest.param("{secret_prefix}", id="truncated"),
    ],
)
def test_deliveries_with_bad_credentials_are_refused_and_leave_no_trace(
        harness: Harness, authorization: str | None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    harness.seed_replica()
    assert register(harness) == 0
    secret = secret_of(harness)
    harness.sim.configure(webhooks={"retry_base_s": 60.0})  # one attempt is enough to look at
    headers = {} if authorization is None else {"Authorization": authorization.format(
        secret=secret, upper=secret.upper(), secret_prefix=secret[:-2])}
    api = harness.api()
    hook = harness.hook()
    api.call("PATCH", f"/rest/v1.0/webhooks/hooks/{hook['id']}",
             json={"company_id": harness.settings.company_id,
                   "hook": {"destination_headers": headers}})
    harness.sim.mutate("update", "rfi", count=3)
    wait_until(lambda: len(found := harness.deliveries()) == 3
               and all(d["response_status"] is not None for d in found))
    assert {d["response_status"] for d in harness.deliveries()} == {401}
    assert harness.events() == [] and harness.jobs() == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "401" in logged and secret not in logged


@pytest.mark.parametrize(
    ("body", "status", "recorded"),
    [
        pytest.param(b"x" * (64 * 1024 + 1), 413, None, id="oversize body"),
        pytest.param(b'{"id": 1, "ulid": "01', 200, "not JSON: ", id="malformed JSON"),
        pytest.param(b'{"event_type": "update", "resource_name": "RFIs"}', 200,
                     "api_version is missing", id="JSON that is no event"),
        pytest.param(b"", 200, "not JSON: ", id="empty body"),
    ],
)
def test_bodies_that_are_no_event_are_kept_and_queue_nothing(
        harness: Harness, body: bytes, status: int, recorded: str | None) -> None:
    SecretFile(harness.options.secrets_file).rotate("body-test-secret")
    time.sleep(0.2)
    answer = requests.post(harness.url, data=body, timeout=5,
                           headers={"Authorization": "body-test-secret"})
    assert answer.status_code == status
    details = [str(e["detail"]) for e in harness.events()]
    assert len(details) == (1 if recorded else 0) and all(d.startswith(recorded or "") for d in details)
    assert harness.jobs() == []


def test_duplicated_and_reordered_deliveries_queue_one_fetch_per_item(harness: Harness) -> None:
    harness.seed_replica()
    assert register(harness) == 0
    harness.sim.configure(webhooks={"duplicate_ratio": 1.0, "reorder_window_s": 0.3})
    changes = harness.sim.mutate("update", "submittal", count=30, same_second=False)
    distinct = {(c["project_id"], c["id"]) for c in changes}
    harness.settled(2 * len(changes))
    events = harness.events()
    assert len(events) == len(changes)  # one row per event, whatever was delivered twice
    jobs = harness.jobs()
    assert Counter((j.project_id, j.item_id) for j in jobs) == Counter(distinct)


def test_an_event_replayed_a_day_later_causes_no_second_fetch(harness: Harness) -> None:
    harness.seed_replica()
    assert register(harness) == 0
    harness.sim.mutate("update", "rfi")
    [delivery] = harness.settled(1)
    [job] = harness.jobs()
    # The fetch ran (the fetcher cleared the debounce key) and a day passed; then a replay.
    harness.redis.delete(debounce_key(job.kind, job.project_id, job.item_id))
    replay = requests.post(harness.url, data=orjson.dumps(delivery["event"]),
                           headers={"Authorization": secret_of(harness)}, timeout=5)
    assert replay.status_code == 200 and replay.json()["result"] == "duplicate"
    assert len(harness.jobs()) == 1 and len(harness.events()) == 1


def test_a_storm_of_1000_events_is_answered_and_queues_one_fetch_per_item(
        harness: Harness) -> None:
    harness.seed_replica()
    # One fetch per item is the point here; the flood cap (tests/security) would fold most of them.
    harness.options = dataclasses.replace(harness.options, jobs_per_minute=10_000)
    port = harness.port
    harness.stop_listener()
    harness.start_listener(port=port)
    assert register(harness) == 0
    harness.sim.configure(webhooks={"duplicate_ratio": 0.2, "reorder_window_s": 0.05})
    changes: list[dict[str, Any]] = []
    for kind, count in (("rfi", 400), ("submittal", 300), ("task", 200), ("meeting", 100)):
        changes += harness.sim.mutate("update", kind, count=count)
    assert len(changes) == 1000
    started = time.monotonic()
    deliveries = harness.settled(1000, timeout_s=120)
    elapsed_s = time.monotonic() - started
    assert all(200 <= d["response_status"] < 300 for d in deliveries)
    assert len(harness.events()) == 1000
    items = Counter((j.kind, j.project_id, j.item_id) for j in harness.jobs())
    assert set(items.values()) == {1}
    assert set(items) == {(c["kind"], c["project_id"], c["id"]) for c in changes}
    assert elapsed_s < 60


def test_deliveries_missed_while_the_listener_was_down_arrive_with_procores_retries(
        harness: Harness) -> None:
    harness.seed_replica()
    assert register(harness) == 0
    port = harness.port
    harness.stop_listener()
    changes = harness.sim.mutate("update", "rfi", count=5, same_second=False)
    wait_until(lambda: len(found := harness.deliveries()) == 5
               and all(d["outcome"] == "retried" for d in found))
    assert harness.events() == []
    harness.start_listener(port=port)
    harness.settled(5)
    assert len(harness.events()) == 5
    assert {j.item_id for j in harness.jobs()} == {c["id"] for c in changes}


def test_a_delete_marks_the_record_pending_and_queues_its_confirming_fetch(
        harness: Harness) -> None:
    harness.seed_replica()
    assert register(harness) == 0
    [change] = harness.sim.mutate("delete", "rfi")
    harness.settled(1)
    with harness.pool.connection() as conn:
        row = conn.execute("SELECT delete_pending, is_deleted FROM rfis WHERE procore_id = %s",
                           (change["id"],)).fetchone()
    assert row == (True, False)
    [job] = harness.jobs()
    assert (job.item_id, job.reason) == (change["id"], "webhook:delete")


def test_events_of_a_project_the_replica_lacks_are_recorded_and_ignored(
        harness: Harness) -> None:
    projects = harness.sim.truth(["project"])["records"]
    unknown = projects[0]["id"]
    harness.seed_replica(skip_project=unknown)
    assert register(harness) == 0
    harness.sim.mutate("update", "rfi", project_id=unknown)
    harness.sim.mutate("create", "project")
    harness.settled(2)
    by_resource = {e["resource_name"]: e for e in harness.events()}
    assert by_resource["RFIs"]["status"] == "ignored"
    assert by_resource["RFIs"]["detail"] == f"project {unknown} is not in the replica"
    assert by_resource["Projects"]["status"] == "enqueued"  # a new project is fetched at once
    [job] = harness.jobs()
    assert (job.kind, job.project_id) == ("project", None)


def test_v4_payloads_are_parsed_like_v2_ones(harness: Harness) -> None:
    harness.seed_replica()
    assert register(harness, "--payload-version", "v4.0") == 0
    [change] = harness.sim.mutate("update", "rfi")
    harness.settled(1)
    [event] = harness.events()
    assert (event["api_version"], event["resource_id"], event["status"]) == (
        "v4.0", change["id"], "enqueued")
    assert len(event["event_key"]) == 26


def test_a_configured_hmac_is_verified_on_real_deliveries(harness: Harness) -> None:
    harness.seed_replica()
    port = harness.port
    harness.stop_listener()
    harness.start_listener(port=port, hmac_secret="shared-hmac-key")
    assert register(harness) == 0
    harness.sim.configure(webhooks={"hmac_secret": "shared-hmac-key"})
    harness.sim.mutate("update", "rfi")
    harness.settled(1)
    harness.sim.configure(webhooks={"hmac_secret": "another-key", "retry_base_s": 60.0})
    harness.sim.mutate("update", "submittal")
    wait_until(lambda: any(d["response_status"] == 401 for d in harness.deliveries()))
    assert [e["resource_name"] for e in harness.events()] == ["RFIs"]


def test_rotating_the_secret_never_refuses_a_delivery(harness: Harness) -> None:
    harness.seed_replica()
    assert register(harness) == 0
    old = secret_of(harness)
    assert register(harness, "--rotate-secret") == 0
    new = secret_of(harness)
    assert new != old
    assert harness.hook()["destination_headers"] == {"Authorization": new}
    time.sleep(0.2)  # the listener rereads the secrets file
    for secret in (old, new):  # a retry still carrying the old header is accepted too
        payload = {"id": 1, "ulid": f"ROTATION{secret[:8]}", "timestamp": "2026-11-01T10:00:00Z",
                   "company_id": harness.settings.company_id, "project_id": None,
                   "api_version": "v2.0", "event_type": "update",
                   "resource_name": "Company Vendors", "resource_id": 5}
        answer = requests.post(harness.url, data=orjson.dumps(payload),
                               headers={"Authorization": secret}, timeout=5)
        assert answer.status_code in (200, 202)
    harness.sim.mutate("update", "rfi")
    assert all(d["outcome"] == "ok" for d in harness.settled(1))


def test_status_lists_the_hook_triggers_and_delivery_outcomes_without_the_secret(
        harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    harness.seed_replica()
    assert register(harness) == 0
    harness.sim.mutate("update", "rfi", count=2, same_second=False)
    harness.settled(2)
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"hook {harness.hook()['id']}: {harness.url}" in out
    assert "RFIs update" in out
    assert "2 ok" in out
    assert secret_of(harness) not in out


def test_unregister_removes_our_hook_and_the_stored_secret(
        harness: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    assert register(harness) == 0
    other = harness.api()
    other.namespace = OTHER_NAMESPACE
    other.create_hook("https://other.example.com/hooks", "theirs", "v2.0")
    assert cli.main(["unregister"]) == 0
    assert harness.api().hooks() == []
    assert len(other.hooks()) == 1  # another integration's hook is not ours to delete
    assert not (harness.settings.var_dir / SECRETS_FILE_NAME).exists()
    assert cli.main(["status"]) == 1


def test_register_refuses_a_plain_http_url_off_the_loopback(harness: Harness) -> None:
    assert cli.main(["register", "--url", "http://hooks.example.com/webhooks/procore"]) == 2
    assert harness.api().hooks() == []


def test_answers_on_loopback_stay_far_inside_procores_five_seconds(harness: Harness) -> None:
    harness.seed_replica()
    secret = "latency-secret"
    SecretFile(harness.options.secrets_file).rotate(secret)
    time.sleep(0.2)
    session = requests.Session()
    timings = []
    for number in range(300):
        payload = {"id": number + 1, "ulid": f"LATENCY{number:019d}",
                   "timestamp": "2026-11-01T10:00:00Z", "company_id": harness.settings.company_id,
                   "project_id": None, "api_version": "v2.0", "event_type": "update",
                   "resource_name": "Company Vendors", "resource_id": 1 + number % 50}
        started = time.perf_counter()
        answer = session.post(harness.url, data=orjson.dumps(payload),
                              headers={"Authorization": secret}, timeout=5)
        timings.append(time.perf_counter() - started)
        assert answer.status_code == 202
    timings.sort()
    p99_ms = timings[int(len(timings) * 0.99) - 1] * 1000
    # Procore gives up after 5 s. About 10 ms on a quiet machine; the bound is a fifth of Procore's
    # so that a busy machine (two suites at once) does not fail it, not a speed goal.
    assert p99_ms < 1000, f"p99 {p99_ms:.1f} ms"
    assert len(harness.jobs()) == 50


def test_the_listener_process_serves_and_stops_on_sigterm(
        harness: Harness, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from eva00.config import ROOT_DIR
    from eva00.ops.localstack import free_port, wait_for_port

    port = free_port()
    env = {**os.environ, "EVA00_WEBHOOK_PORT": str(port), "EVA00_WEBHOOK_SECRETS": "proc-secret"}
    process = subprocess.Popen([sys.executable, str(ROOT_DIR / "processes" / "webhook.py")],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 30, alive=lambda: process.poll() is None)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {
            "status": {"postgres": True, "redis": True}}
        answer = requests.post(f"http://127.0.0.1:{port}/webhooks/procore", data=b"{}",
                               headers={"Authorization": "nope"}, timeout=5)
        assert answer.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode()
    assert "proc-secret" not in output
    assert "webhook listener on 127.0.0.1" in output
