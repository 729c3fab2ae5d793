"""The doctor's pure parts: the clock-offset measurement and its judgement, file and directory
modes, disk space, rate-limit headers, tools, company and webhook deliveries, the output lines,
and the runner (a crashing check is one FAIL line; what needs a failed check is skipped)."""

from __future__ import annotations

import email.utils
from pathlib import Path
from typing import Any

import pytest

from eva00.config import Settings
from eva00.ops.doctor import Check, Context, check_configuration, check_data_dir, redact_url, run_checks
from eva00.ops.doctor_probe import Reply
from eva00.ops.doctor_verdicts import (
    CheckResult,
    Status,
    clock_offset,
    judge_clock,
    judge_company,
    judge_deliveries,
    judge_disk,
    judge_rate,
    judge_tools,
    loose_modes,
    passed,
)

PASS, WARN, FAIL = Status.PASS, Status.WARN, Status.FAIL


# --- the clock ---

def test_the_clock_offset_is_measured_from_the_middle_of_the_date_headers_second() -> None:
    date = email.utils.formatdate(1_000.0, usegmt=True)  # stamped somewhere in [1000, 1001)
    offset_s, uncertainty_s = clock_offset(date, received_at_s=1_000.3, elapsed_s=0.2) or (0.0, 0.0)
    assert offset_s == pytest.approx(1_000.5 - 1_000.2)  # the request's midpoint on this host
    assert uncertainty_s == pytest.approx(0.6)


def test_an_unreadable_date_header_gives_no_offset() -> None:
    assert clock_offset("yesterday-ish", received_at_s=1.0, elapsed_s=0.1) is None


@pytest.mark.parametrize(("offset_s", "status"), [
    (0.4, PASS),  # within the measurement's own uncertainty
    (-2.5, PASS),  # 1.9 s certain: below the warning
    (3.0, WARN),  # 2.4 s certain: past a few seconds
    (-5.5, WARN),  # 4.9 s certain: still inside the 5 s margin
    (6.0, FAIL),  # 5.4 s certain: past the poll safety margin
    (-90.0, FAIL),
])
def test_the_clock_warns_past_a_few_seconds_and_fails_past_the_poll_safety_margin(
        offset_s: float, status: Status) -> None:
    assert judge_clock(offset_s, 0.6, warn_after_s=2.0, fail_after_s=5.0)[0] is status


def test_the_clock_detail_says_which_way_the_server_is_off() -> None:
    assert "30.0 s behind this host's clock" in judge_clock(-30.0, 0.5, warn_after_s=2, fail_after_s=5)[1]
    assert "30.0 s ahead of this host's clock" in judge_clock(30.0, 0.5, warn_after_s=2, fail_after_s=5)[1]


# --- files, directories, disk ---

@pytest.mark.parametrize(("mode", "loose"), [
    (0o600, False), (0o400, False), (0o700, False),
    (0o640, True), (0o604, True), (0o644, True), (0o750, True), (0o755, True), (0o701, True),
])
def test_group_or_other_permission_bits_make_a_secret_or_the_data_dir_loose(mode: int, loose: bool) -> None:
    assert bool(loose_modes({Path("x"): mode})) is loose


@pytest.mark.parametrize(("free", "status"), [(10, FAIL), (19, FAIL), (20, WARN), (24, WARN), (25, PASS)])
def test_disk_fails_below_the_guard_ratio_and_warns_just_above_it(free: int, status: Status) -> None:
    assert judge_disk(free * 2**30, 100 * 2**30, 0.20)[0] is status


def test_a_world_readable_env_file_makes_the_configuration_check_warn_with_chmod_600(
        tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("EVA00_RATE_BURST=8\n")
    dotenv.chmod(0o644)
    ctx = Context(environ={"EVA00_VAR_DIR": str(tmp_path / "var")}, dotenv=dotenv)
    result = check_configuration(ctx)
    assert result.status is WARN and f"{dotenv} (0644)" in result.detail
    assert result.fix == f"chmod 600 {dotenv}"
    dotenv.chmod(0o600)
    assert check_configuration(ctx).status is PASS


def test_the_configuration_check_names_every_invalid_setting_at_once() -> None:
    ctx = Context(environ={"EVA00_RATE_BURST": "-1", "REDIS_URL": "http://x", "EVA00_PG_PORT": "x"},
                  dotenv=None)
    result = check_configuration(ctx)
    assert result.status is FAIL and result.detail.startswith("3 invalid: ")
    for variable in ("EVA00_RATE_BURST", "REDIS_URL", "EVA00_PG_PORT"):
        assert variable in result.detail
    assert ctx.settings is None


def test_a_data_dir_others_can_read_warns_and_a_private_one_passes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ctx = Context(settings=Settings.from_env({"EVA00_DATA_DIR": str(data)}, dotenv=None))
    assert check_data_dir(ctx).status is WARN and "mkdir -p -m 700" in check_data_dir(ctx).fix
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    result = check_data_dir(ctx)
    assert result.status is WARN and "0755" in result.detail and result.fix == f"chmod -R go-rwx {data}"
    data.chmod(0o700)
    assert check_data_dir(ctx).status is PASS


def test_urls_are_shown_without_their_password() -> None:
    assert redact_url("postgresql://eva:s3cret@db.example:5432/eva00") == "postgresql://eva@db.example:5432/eva00"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


# --- what Procore answered ---

@pytest.mark.parametrize(("headers", "status"), [
    ({"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "91"}, PASS),
    ({"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "3"}, WARN),  # at the client's low water
    ({"X-Rate-Limit-Limit": "100"}, WARN),
    ({}, WARN),
])
def test_rate_limit_headers_warn_when_missing_or_nearly_used_up(
        headers: dict[str, str], status: Status) -> None:
    assert judge_rate(headers)[0] is status


def ok(status: int = 200) -> Reply:
    return Reply(status, []) if status < 400 else Reply(status, problem=f"answered {status}")


def test_tools_that_all_answer_pass() -> None:
    result = judge_tools("7 (Tower)", [("rfis", ok()), ("submittals", ok())])
    assert result.status is PASS and result.detail == "project 7 (Tower): rfis 200, submittals 200"


@pytest.mark.parametrize("refused", [403, 404])
def test_a_refused_tool_is_a_warning_naming_it(refused: int) -> None:
    result = judge_tools("7", [("rfis", ok()), ("documents", ok(refused))])
    assert result.status is WARN
    assert "(documents: tool switched off or no permission)" in result.detail and "Tools" in result.fix


def test_every_tool_refused_points_at_the_projects_directory() -> None:
    result = judge_tools("7", [("rfis", ok(403)), ("documents", ok(403))])
    assert result.status is WARN and "Directory" in result.fix


def test_a_tool_that_did_not_answer_is_a_warning_too() -> None:
    result = judge_tools("7", [("rfis", ok()), ("drawings", Reply(0, problem="failed 3 times"))])
    assert result.status is WARN and "drawings no answer" in result.detail


def test_a_company_missing_from_the_tokens_companies_fails_with_the_ids_to_use() -> None:
    companies = Reply(200, [{"id": 1000, "name": "Ikari"}, {"id": 2000, "name": "Katsuragi"}])
    result = judge_company(4242, {"login": "svc@example"}, companies)
    assert result.status is FAIL
    assert result.fix == "set PROCORE_COMPANY_ID to one of: 1000 (Ikari), 2000 (Katsuragi)"
    assert judge_company(2000, {"login": "svc@example"}, companies).status is PASS


@pytest.mark.parametrize(("deliveries", "status"), [
    ([], WARN),
    ([{"status": "successful"}, {"status": "retrying"}], PASS),
    ([{"outcome": "retrying"}, {"outcome": "successful"}], WARN),  # the newest failed
    ([{"outcome": "ok"}, {"outcome": "failed"}], PASS),  # Procore's documented vocabulary
    ([{"outcome": None}], PASS),  # not attempted yet
    ([{"outcome": "retried"}, {"outcome": "ok"}], WARN),
    ([{"status": "discarded"}], WARN),
])
def test_webhook_deliveries_warn_when_none_came_or_the_newest_failed(
        deliveries: list[dict[str, Any]], status: Status) -> None:
    assert judge_deliveries({"id": 1, "destination_url": "https://x"}, deliveries).status is status


# --- output and the runner ---

def test_a_result_prints_one_line_and_an_indented_fix_only_when_not_passing() -> None:
    assert CheckResult("redis", FAIL, "down", "start it").lines() == [
        "FAIL  redis: down", "      fix: start it"]
    assert CheckResult("redis", PASS, "up", "unused").lines() == ["PASS  redis: up"]


def test_a_check_that_crashes_is_one_fail_line_and_what_needs_it_is_skipped() -> None:
    def crash(ctx: Context) -> CheckResult:
        raise KeyError("boom")

    def fine(name: str) -> Check:
        return Check(name, lambda ctx: CheckResult(name, PASS, "ok"))

    checks = [Check("redis", crash), Check("procore", fine("procore").run, ("redis",)),
              Check("token", fine("token").run, ("procore",)), fine("disk")]
    results = run_checks(Context(), checks)
    assert [(r.name, r.status) for r in results] == [
        ("redis", FAIL), ("procore", WARN), ("token", WARN), ("disk", PASS)]
    assert results[0].detail == "the check itself failed: KeyError: 'boom'"
    assert results[1].detail == "skipped: needs Redis (the shared rate limiter)"
    assert results[2].detail == "skipped: needs an answer from Procore"  # a skip propagates
    assert not passed(results) and passed(results[1:])


def test_the_doctor_leaves_the_callers_logging_level_as_it_found_it() -> None:
    import logging

    from eva00.cli.doctor import main

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    try:
        # An invalid setting: the configuration check fails and nothing else runs.
        assert main(["--json"], environ={"EVA00_STREAM_BATCH": "many"}, dotenv=None) != 0
        assert root.level == logging.INFO, "later log lines of the caller would be swallowed"
    finally:
        root.setLevel(before)
