"""`eva00 doctor` against real services: the simulator as the embedded Procore, the session's
PostgreSQL and Redis. It passes on a healthy stack, and a stopped Redis, a wrong company id, a
refused project, a skewed server clock and an unreachable webhook listener each show up as one
line with its fix, never as a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from eva00.cli.doctor import main
from eva00.ops.localstack import free_port
from eva00.simulator.testing import SimHandle
from tests.integration.test_simulator_webhooks import Listener, register, wait_for

CHECK_NAMES = ["configuration", "postgresql", "redis", "procore", "token", "tools", "rate limit",
               "clock", "webhook", "disk", "data dir"]


def embedded_env(sim: SimHandle, database_url: str, redis_url: str, tmp_path: Path,
                 **extra: str) -> dict[str, str]:
    """The embedded default (no PROCORE_CLIENT_ID) with the simulator on the fixture's port."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "EVA00_DATA_DIR": str(data_dir),
            "EVA00_VAR_DIR": str(tmp_path / "var"), "EVA00_SIM_PORT": str(urlsplit(sim.api_base).port),
            # the shared test machine's disk is not what these tests are about
            "EVA00_DISK_FREE_MIN_RATIO": "0", "EVA00_CONNECTION_ERROR_PAUSE_S": "1", **extra}


def doctor_json(capsys: pytest.CaptureFixture[str], env: dict[str, str],
                *args: str) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
    code = main(["--json", *args], environ=env, dotenv=None)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    document = json.loads(captured.out)
    return code, {check["name"]: check for check in document["checks"]}, document


def api_requests(sim: SimHandle) -> int:
    return sum(1 for entry in sim.ledger() if not str(entry["path"]).startswith("/oauth"))


@pytest.fixture
def healthy_sim(sim: SimHandle) -> SimHandle:
    """A simulator whose hook delivers to a listening endpoint, one delivery done."""
    listener = Listener()
    register(sim, sim.headers(), listener.url)
    rfi = sim.truth(["rfi"])["records"][0]
    sim.mutate("update", "rfi", project_id=rfi["project_id"], id=rfi["id"])
    wait_for(lambda: bool(listener.received))
    return sim


def test_doctor_passes_every_check_against_the_embedded_stack_with_few_requests(
        healthy_sim: SimHandle, database_url: str, redis_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = api_requests(healthy_sim)
    code, checks, document = doctor_json(capsys, embedded_env(healthy_sim, database_url, redis_url, tmp_path))
    assert list(checks) == CHECK_NAMES
    assert {name: check["status"] for name, check in checks.items()} == dict.fromkeys(CHECK_NAMES, "PASS")
    assert code == 0 and document["passed"] is True
    assert "company 1000" in checks["token"]["detail"]
    assert "X-Rate-Limit-Limit" in checks["rate limit"]["detail"]
    assert "newest ok" in checks["webhook"]["detail"]
    assert api_requests(healthy_sim) - before <= 9


def test_a_stopped_redis_fails_with_the_fix_to_start_it_and_skips_what_needs_it(
        sim: SimHandle, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    closed = free_port()
    env = embedded_env(sim, database_url, "", tmp_path, EVA00_REDIS_PORT=str(closed))
    del env["REDIS_URL"]  # the embedded Redis, not started
    code = main([], environ=env, dotenv=None)
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.out + out.err
    lines = out.out.splitlines()
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1
    assert failed[0].startswith(f"FAIL  redis: redis://127.0.0.1:{closed}/0 does not answer")
    assert lines[lines.index(failed[0]) + 1] == (
        f"      fix: start the stack: `make up` (the embedded Redis listens on EVA00_REDIS_PORT={closed})")
    for name in ("procore", "token", "tools", "rate limit", "clock", "webhook"):
        assert f"WARN  {name}: skipped: needs" in out.out
    assert "PASS  postgresql:" in out.out and "PASS  disk:" in out.out
    assert api_requests(sim) == 0


@pytest.mark.parametrize("mode", ["embedded", "configured"])
def test_a_wrong_company_id_fails_the_token_check_with_a_fix_naming_PROCORE_COMPANY_ID(
        mode: str, sim: SimHandle, database_url: str, redis_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    env = embedded_env(sim, database_url, redis_url, tmp_path, PROCORE_COMPANY_ID="4242")
    if mode == "configured":  # as for real Procore: credentials and hosts in the environment
        env.update(PROCORE_CLIENT_ID=sim.client_id, PROCORE_CLIENT_SECRET=sim.client_secret,
                   PROCORE_API_BASE=sim.api_base, PROCORE_LOGIN_BASE=sim.login_base,
                   EVA00_ALLOW_LOOPBACK_URLS="1")
    code, checks, document = doctor_json(capsys, env)
    token = checks["token"]
    assert code == 1 and document["passed"] is False
    assert token["status"] == "FAIL" and "company 4242" in token["detail"]
    assert "App is not connected to this company" in token["detail"]
    assert "PROCORE_COMPANY_ID" in token["fix"]
    assert checks["procore"]["status"] == "PASS"
    assert checks["tools"]["detail"] == checks["webhook"]["detail"] == \
        "skipped: needs a token valid for the company"
    assert checks["clock"]["status"] == "PASS"  # the refusal's Date header still tells the time


def test_a_project_the_simulator_refuses_shows_its_tools_as_a_warning_not_a_failure(
        sim: SimHandle, database_url: str, redis_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    project_id = int(sim.truth(["project"])["records"][0]["id"])
    sim.forbid_project(project_id)
    code, checks, _ = doctor_json(capsys, embedded_env(sim, database_url, redis_url, tmp_path),
                                  "--project", str(project_id))
    tools = checks["tools"]
    assert tools["status"] == "WARN" and code == 0
    assert tools["detail"].startswith(f"project {project_id}: submittals 403, rfis 403, drawings 403")
    assert "tool switched off or no permission" in tools["detail"]
    assert f"project {project_id}" in tools["fix"]


def test_a_server_clock_past_the_poll_safety_margin_fails_the_clock_check(
        sim: SimHandle, database_url: str, redis_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    sim.configure(clock_offset_s=30.0)
    code, checks, _ = doctor_json(capsys, embedded_env(sim, database_url, redis_url, tmp_path))
    clock = checks["clock"]
    assert code == 1 and clock["status"] == "FAIL"
    assert "s ahead of this host's clock" in clock["detail"] and "EVA00_POLL_SAFETY_MARGIN_S" in clock["fix"]


def test_no_hook_and_a_listener_procore_cannot_reach_are_webhook_warnings(
        sim: SimHandle, database_url: str, redis_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    env = embedded_env(sim, database_url, redis_url, tmp_path)
    _, checks, _ = doctor_json(capsys, env)
    webhook = checks["webhook"]
    assert webhook["status"] == "WARN" and "no hook in namespace eva-sync" in webhook["detail"]
    assert "eva00 webhooks register" in webhook["fix"]

    register(sim, sim.headers(), f"http://127.0.0.1:{free_port()}/webhooks/procore")
    rfi = sim.truth(["rfi"])["records"][0]
    sim.mutate("update", "rfi", project_id=rfi["project_id"], id=rfi["id"])
    deliveries: Callable[[], bool] = lambda: bool(sim.stats()["webhooks"]["deliveries"].get("retrying"))  # noqa: E731
    wait_for(deliveries)
    code, checks, _ = doctor_json(capsys, env)
    webhook = checks["webhook"]
    assert code == 0 and webhook["status"] == "WARN" and "newest retried" in webhook["detail"]
    assert "tunnel" in webhook["fix"]


def test_a_stack_running_with_larger_rate_limits_is_named_instead_of_waiting_for_a_token(
        sim: SimHandle, database_url: str, redis_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    import redis

    from eva00.procore.keys import DEFAULT_KEYS
    from eva00.procore.limiter import BudgetClass, LimiterConfig, RateLimiter

    # make demo's processes: ten times the limit, their grants in the shared window
    demo = LimiterConfig(burst=200, refill_per_s=1000.0, window_max=950, window_s=60.0, budget_window_s=60.0,
                         budgets={BudgetClass.SCHEDULED: 600, BudgetClass.WEBHOOK: 150,
                                  BudgetClass.ON_DEMAND: 150}, reserve_slots=50)
    client = redis.Redis.from_url(redis_url)
    try:
        limiter = RateLimiter(client, demo)
        for _ in range(120):
            assert limiter.try_acquire(BudgetClass.SCHEDULED).granted
        before = api_requests(sim)
        code, checks, _ = doctor_json(capsys, embedded_env(sim, database_url, redis_url, tmp_path,
                                                           EVA00_RATE_WINDOW_MAX="95"))
        assert code == 1 and checks["procore"]["status"] == "FAIL"
        assert "120 requests" in checks["procore"]["detail"]
        assert "EVA00_RATE_WINDOW_MAX=95" in checks["procore"]["detail"]
        assert "make doctor" in checks["procore"]["fix"]
        assert api_requests(sim) == before  # nothing sent beyond the window this shell allows
    finally:
        client.delete(DEFAULT_KEYS.rate_window, DEFAULT_KEYS.rate_bucket, DEFAULT_KEYS.rate_waiting,
                      *(DEFAULT_KEYS.rate_used(c.value) for c in BudgetClass))
