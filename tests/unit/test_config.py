"""Settings: every variable parses, a malformed one is named, PROCORE_* come together, `.env` is
read (the environment wins over it), and the README's table lists every variable with its default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from eva00.config import (
    DEFAULT_POLL_INTERVALS_S,
    EXIT_CONFIG,
    ROOT_DIR,
    ConfigError,
    Settings,
    load_or_exit,
    read_dotenv,
    settings_table,
)

# A valid value for every variable, and what it parses to.
SAMPLES: dict[str, tuple[str, Any]] = {
    "PROCORE_API_BASE": ("https://sandbox.procore.com/", "https://sandbox.procore.com"),
    "PROCORE_LOGIN_BASE": ("https://login-sandbox.procore.com", "https://login-sandbox.procore.com"),
    "PROCORE_CLIENT_ID": ("client-1", "client-1"),
    "PROCORE_CLIENT_SECRET": ("s3cret", "s3cret"),
    "PROCORE_COMPANY_ID": ("42", 42),
    "PROCORE_AUTH_MODE": ("authorization_code", "authorization_code"),
    "PROCORE_REDIRECT_URI": ("https://example.com/callback", "https://example.com/callback"),
    "DATABASE_URL": ("postgresql://u@db.example:5433/eva", "postgresql://u@db.example:5433/eva"),
    "REDIS_URL": ("redis://cache.example:6380/2", "redis://cache.example:6380/2"),
    "EVA00_DATABASE_OWNER_URL": ("postgresql://owner@db.example:5433/eva",
                                 "postgresql://owner@db.example:5433/eva"),
    "EVA00_DATA_DIR": ("/srv/eva/data", Path("/srv/eva/data")),
    "EVA00_VAR_DIR": ("/srv/eva/var", Path("/srv/eva/var")),
    "EVA00_PG_PORT": ("5433", 5433),
    "EVA00_REDIS_PORT": ("6380", 6380),
    "EVA00_SIM_PORT": ("9400", 9400),
    "EVA00_SIM_STORAGE_PORT": ("9402", 9402),
    "EVA00_SIM_FILE_PORT": ("9403", 9403),
    "EVA00_SIM_PROJECTS": ("3", 3),
    "EVA00_SIM_ITEMS": ("50", 50),
    "EVA00_STREAM_BLOCK_MS": ("150", 150),
    "EVA00_STREAM_BATCH": ("2", 2),
    "EVA00_CLAIM_IDLE_MS": ("500", 500),
    "EVA00_MAX_DELIVERIES": ("7", 7),
    "EVA00_STREAM_MAXLEN": ("1000", 1000),
    "EVA00_OUTAGE_BACKOFF_CAP_S": ("0.25", 0.25),
    "EVA00_HTTP_TIMEOUT_S": ("5.5", 5.5),
    "EVA00_RATE_BURST": ("4", 4),
    "EVA00_RATE_REFILL_PER_S": ("0.5", 0.5),
    "EVA00_RATE_WINDOW_MAX": ("20", 20),
    "EVA00_RATE_WINDOW_S": ("10", 10.0),
    "EVA00_BUDGET_SCHEDULED_PER_MIN": ("30", 30),
    "EVA00_BUDGET_WEBHOOK_PER_MIN": ("5", 5),
    "EVA00_BUDGET_ON_DEMAND_PER_MIN": ("6", 6),
    "EVA00_BUDGET_BUFFER_PER_MIN": ("2", 2),
    "EVA00_CONNECTION_ERROR_PAUSE_S": ("1.5", 1.5),
    "EVA00_BAD_ANSWER_RETRY_S": ("0.25", 0.25),
    "EVA00_KEEPALIVE_INTERVAL_S": ("60", 60.0),
    "EVA00_POLL_INTERVALS": ("rfis=60, submittals=30",
                             {**DEFAULT_POLL_INTERVALS_S, "rfis": 60, "submittals": 30}),
    "EVA00_POLL_LOOKBACK_S": ("30", 30.0),
    "EVA00_POLL_SAFETY_MARGIN_S": ("1", 1.0),
    "EVA00_RECONCILE_INTERVAL_S": ("3600", 3600.0),
    "EVA00_SCHEDULE": ("fixed", "fixed"),
    "EVA00_MAX_STALENESS_S": ("7200", 7200.0),
    "EVA00_ACTIVE_WINDOW_S": ("3600", 3600.0),
    "EVA00_PLAN_TICK_S": ("0.5", 0.5),
    "EVA00_UNAVAILABLE_RECHECK_S": ("60", 60.0),
    "EVA00_FULLSYNC_STEP_S": ("2.5", 2.5),
    "EVA00_FETCHER_STREAMS": (" priority ", ("priority",)),
    "EVA00_SIM_RATE_LIMIT": ("1000/60", "1000/60"),
    "EVA00_SIM_SPIKE": ("OFF", "off"),
    "EVA00_SIM_CLOCK_OFFSET_S": ("-5400", -5400.0),
    "EVA00_SIM_TOOLS_OFF": ("daily_logs@20%, meetings@10001+10002", "daily_logs@20%,meetings@10001+10002"),
    "EVA00_DOWNLOAD_REQUEUE_AFTER_S": ("30", 30.0),
    "EVA00_DOWNLOAD_HOUSEKEEPING_S": ("5", 5.0),
    "EVA00_MASS_DELETE_RATIO": ("0.5", 0.5),
    "EVA00_DOWNLOAD_CONCURRENCY": ("8", 8),
    "EVA00_DISK_FREE_MIN_RATIO": ("0", 0.0),
    "EVA00_STORAGE_HOSTS": ("a.example, b.example,", ("a.example", "b.example")),
    "EVA00_BEARER_HOSTS": ("*.procore.com, files.example:8443", ("*.procore.com", "files.example:8443")),
    "EVA00_ALLOW_LOOPBACK_URLS": ("yes", True),
    "EVA00_DOWNLOAD_MAX_BYTES": ("1048576", 1048576),
    "EVA00_DOWNLOAD_DEADLINE_S": ("600", 600.0),
    "EVA00_DOWNLOAD_MIN_RATE_BYTES_S": ("1024", 1024),
    "EVA00_DOWNLOAD_RATE_WINDOW_S": ("30", 30.0),
    "EVA00_DOCUMENT_SANDBOX_MEMORY_BYTES": ("536870912", 536870912),
    "EVA00_DOCUMENT_SANDBOX_CPU_S": ("5", 5),
    "EVA00_DOCUMENT_SANDBOX_TIMEOUT_S": ("2.5", 2.5),
    "EVA00_IMAGE_MAX_PIXELS": ("40000000", 40_000_000),
    "EVA00_WEBHOOK_HOST": ("0.0.0.0", "0.0.0.0"),
    "EVA00_WEBHOOK_PORT": ("8501", 8501),
    "EVA00_WEBHOOK_SECRETS": ("old-secret,new-secret", ("old-secret", "new-secret")),
    "EVA00_WEBHOOK_HMAC_SECRET": ("hmac-key", "hmac-key"),
    "EVA00_WEBHOOK_DEBOUNCE_TTL_S": ("120", 120.0),
    "EVA00_WEBHOOK_THREADS": ("4", 4),
    "EVA00_WEBHOOK_READ_TIMEOUT_S": ("2.5", 2.5),
    "EVA00_WEBHOOK_REQUEUE_INTERVAL_S": ("30", 30.0),
    "EVA00_WEBHOOK_JOBS_PER_MINUTE": ("500", 500),
    "EVA00_DASHBOARD_PORT": ("8503", 8503),
    "EVA00_DASHBOARD_HOSTS": ("eva.example.com, proxy", ("eva.example.com", "proxy")),
    "EVA00_SYNC_LOG_RETENTION_DAYS": ("30", 30),
    "EVA00_WEBHOOK_EVENTS_RETENTION_DAYS": ("14", 14),
}

# Values each validating parser must refuse.
MALFORMED: dict[str, list[str]] = {
    "PROCORE_API_BASE": ["ftp://api.procore.com", "api.procore.com", "https://"],
    "PROCORE_LOGIN_BASE": ["login.procore.com"],
    "PROCORE_COMPANY_ID": ["0", "-4", "acme"],
    "PROCORE_AUTH_MODE": ["password"],
    "DATABASE_URL": ["mysql://u@h/db", "127.0.0.1:5432"],
    "REDIS_URL": ["http://127.0.0.1:6379"],
    "EVA00_DATABASE_OWNER_URL": ["mysql://u@h/db"],
    **{name: ["0", "65536", "eighty"] for name in (
        "EVA00_PG_PORT", "EVA00_REDIS_PORT", "EVA00_SIM_PORT", "EVA00_SIM_STORAGE_PORT",
        "EVA00_SIM_FILE_PORT", "EVA00_WEBHOOK_PORT", "EVA00_DASHBOARD_PORT")},
    **{name: ["0", "-1", "1.5", "many"] for name in (
        "EVA00_SIM_PROJECTS", "EVA00_SIM_ITEMS", "EVA00_STREAM_BLOCK_MS", "EVA00_STREAM_BATCH",
        "EVA00_CLAIM_IDLE_MS", "EVA00_MAX_DELIVERIES", "EVA00_STREAM_MAXLEN", "EVA00_RATE_BURST",
        "EVA00_RATE_WINDOW_MAX", "EVA00_BUDGET_SCHEDULED_PER_MIN", "EVA00_BUDGET_WEBHOOK_PER_MIN",
        "EVA00_BUDGET_ON_DEMAND_PER_MIN", "EVA00_BUDGET_BUFFER_PER_MIN",
        "EVA00_DOWNLOAD_CONCURRENCY", "EVA00_SYNC_LOG_RETENTION_DAYS", "EVA00_WEBHOOK_THREADS",
        "EVA00_WEBHOOK_EVENTS_RETENTION_DAYS", "EVA00_WEBHOOK_JOBS_PER_MINUTE", "EVA00_DOWNLOAD_MAX_BYTES",
        "EVA00_DOWNLOAD_MIN_RATE_BYTES_S")},
    **{name: ["0", "-2.5", "nan", "soon"] for name in (
        "EVA00_WEBHOOK_DEBOUNCE_TTL_S", "EVA00_WEBHOOK_READ_TIMEOUT_S", "EVA00_WEBHOOK_REQUEUE_INTERVAL_S",
        "EVA00_OUTAGE_BACKOFF_CAP_S", "EVA00_HTTP_TIMEOUT_S", "EVA00_RATE_REFILL_PER_S",
        "EVA00_RATE_WINDOW_S", "EVA00_CONNECTION_ERROR_PAUSE_S", "EVA00_KEEPALIVE_INTERVAL_S",
        "EVA00_BAD_ANSWER_RETRY_S", "EVA00_POLL_LOOKBACK_S", "EVA00_POLL_SAFETY_MARGIN_S",
        "EVA00_RECONCILE_INTERVAL_S", "EVA00_MAX_STALENESS_S", "EVA00_ACTIVE_WINDOW_S",
        "EVA00_DOWNLOAD_DEADLINE_S", "EVA00_DOWNLOAD_RATE_WINDOW_S",
        "EVA00_PLAN_TICK_S", "EVA00_UNAVAILABLE_RECHECK_S", "EVA00_FULLSYNC_STEP_S")},
    "EVA00_SCHEDULE": ["adaptive,fixed", "Adaptive", "smart"],
    **{name: ["1.5", "-0.1", "half"] for name in (
        "EVA00_MASS_DELETE_RATIO", "EVA00_DISK_FREE_MIN_RATIO")},
    "EVA00_POLL_INTERVALS": ["widgets=60", "rfis", "rfis=0", "rfis=soon"],
    "EVA00_FETCHER_STREAMS": ["webhooks", "priority,pages", ",", "priority;scheduled"],
    **{name: ["100", "0/60", "100/0", "ten/60", "100/-1"]
       for name in ("EVA00_SIM_RATE_LIMIT", "EVA00_SIM_SPIKE")},
    "EVA00_SIM_CLOCK_OFFSET_S": ["soon", "nan", "inf"],
    "EVA00_SIM_TOOLS_OFF": ["Daily Logs", "daily_logs@", "rfis@1000%", "rfis;meetings"],
    "EVA00_ALLOW_LOOPBACK_URLS": ["maybe", "2"],
    **{name: ["0", "-1", "later"]
       for name in ("EVA00_DOWNLOAD_REQUEUE_AFTER_S", "EVA00_DOWNLOAD_HOUSEKEEPING_S")},
    **{name: ["0", "-1", "1.5", "1GB"] for name in (
        "EVA00_DOCUMENT_SANDBOX_MEMORY_BYTES", "EVA00_DOCUMENT_SANDBOX_CPU_S", "EVA00_IMAGE_MAX_PIXELS")},
    "EVA00_DOCUMENT_SANDBOX_TIMEOUT_S": ["0", "-2.5", "nan", "soon"],
}

# Free text: any value is accepted.
FREE_FORM = {"PROCORE_CLIENT_ID", "PROCORE_CLIENT_SECRET", "PROCORE_REDIRECT_URI", "EVA00_DATA_DIR",
             "EVA00_VAR_DIR", "EVA00_STORAGE_HOSTS", "EVA00_BEARER_HOSTS", "EVA00_WEBHOOK_HOST",
             "EVA00_WEBHOOK_SECRETS",
             "EVA00_WEBHOOK_HMAC_SECRET", "EVA00_DASHBOARD_HOSTS"}

ATTRIBUTE = {item.metadata["env"]: item.name for item in dataclasses.fields(Settings)}
PROCORE_CREDENTIALS = {"PROCORE_CLIENT_ID": "client-1", "PROCORE_CLIENT_SECRET": "s3cret",
                       "PROCORE_COMPANY_ID": "42"}


def test_every_variable_has_a_sample_and_every_validated_one_a_malformed_value() -> None:
    assert set(SAMPLES) == set(ATTRIBUTE)
    assert set(MALFORMED) | FREE_FORM == set(ATTRIBUTE) and not set(MALFORMED) & FREE_FORM


def test_every_variable_parses_into_its_setting() -> None:
    settings = Settings.from_env({name: raw for name, (raw, _) in SAMPLES.items()}, dotenv=None)
    parsed = {name: getattr(settings, ATTRIBUTE[name]) for name in SAMPLES}
    assert parsed == {name: expected for name, (_, expected) in SAMPLES.items()}


def test_an_empty_environment_gives_the_production_defaults_on_the_embedded_stack() -> None:
    settings = Settings.from_env({}, dotenv=None)
    assert settings == Settings()
    assert (settings.stream_block_ms, settings.claim_idle_ms, settings.max_deliveries) == (2000, 60000, 5)
    assert settings.embedded_simulator and settings.embedded_postgres and settings.embedded_redis
    assert settings.api_base == f"http://127.0.0.1:{settings.sim_port}"
    assert settings.effective_redis_url == f"redis://127.0.0.1:{settings.embedded_redis_port}/0"


@pytest.mark.parametrize("raw", ["scheduled,priority", "priority,scheduled,priority", "scheduled, priority"])
def test_a_fetcher_reading_both_streams_always_drains_the_priority_one_first(raw: str) -> None:
    settings = Settings.from_env({"EVA00_FETCHER_STREAMS": raw}, dotenv=None)
    assert settings.fetcher_streams == ("priority", "scheduled") == Settings().fetcher_streams


def test_an_empty_value_means_the_default() -> None:
    assert Settings.from_env({"EVA00_STREAM_BATCH": ""}, dotenv=None).stream_batch == 10


@pytest.mark.parametrize(("variable", "raw"), [(name, raw) for name, raws in MALFORMED.items()
                                                for raw in raws])
def test_a_malformed_value_is_refused_naming_its_variable(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: raw}, dotenv=None)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ") and caught.value.problem


@pytest.mark.parametrize("missing", ["PROCORE_CLIENT_SECRET", "PROCORE_COMPANY_ID"])
def test_a_procore_client_id_requires_its_secret_and_company(missing: str) -> None:
    env = {k: v for k, v in PROCORE_CREDENTIALS.items() if k != missing}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env, dotenv=None)
    assert caught.value.variable == missing
    assert "PROCORE_CLIENT_ID" in caught.value.problem


def test_with_procore_credentials_the_real_api_is_used() -> None:
    settings = Settings.from_env(PROCORE_CREDENTIALS, dotenv=None)
    assert not settings.embedded_simulator
    assert (settings.api_base, settings.login_base) == ("https://api.procore.com",
                                                        "https://login.procore.com")
    assert (settings.client_id, settings.client_secret, settings.company_id) == ("client-1", "s3cret", 42)


def test_without_a_client_id_a_secret_or_company_alone_is_not_required() -> None:
    assert Settings.from_env({"PROCORE_COMPANY_ID": "42"}, dotenv=None).embedded_simulator


DOTENV = """\
# EVA-00 settings for this machine

export PROCORE_API_BASE=https://sandbox.procore.com
EVA00_STREAM_BATCH = 3
EVA00_WEBHOOK_SECRETS="first,second"
EVA00_WEBHOOK_HMAC_SECRET='a=b # not a comment'
EVA00_WEBHOOK_HOST=
"""


def test_dotenv_lines_are_read_with_comments_export_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(DOTENV)
    assert read_dotenv(path) == {
        "PROCORE_API_BASE": "https://sandbox.procore.com",
        "EVA00_STREAM_BATCH": "3",
        "EVA00_WEBHOOK_SECRETS": "first,second",
        "EVA00_WEBHOOK_HMAC_SECRET": "a=b # not a comment",
        "EVA00_WEBHOOK_HOST": "",
    }
    settings = Settings.from_env({}, dotenv=path)
    assert settings.procore_api_base == "https://sandbox.procore.com"
    assert (settings.stream_batch, settings.webhook_secrets) == (3, ("first", "second"))
    assert settings.webhook_host == "127.0.0.1"


def test_the_environment_wins_over_dotenv(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("EVA00_STREAM_BATCH=3\nEVA00_MAX_DELIVERIES=nine\nEVA00_CLAIM_IDLE_MS=700\n")
    settings = Settings.from_env({"EVA00_STREAM_BATCH": "4", "EVA00_MAX_DELIVERIES": "9"}, dotenv=path)
    assert (settings.stream_batch, settings.max_deliveries, settings.claim_idle_ms) == (4, 9, 700)


def test_a_malformed_value_in_dotenv_names_its_variable(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("EVA00_MAX_DELIVERIES=nine\n")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, dotenv=path)
    assert caught.value.variable == "EVA00_MAX_DELIVERIES"


@pytest.mark.parametrize("bad_line", ["EVA00_STREAM_BATCH", "1BATCH=3", "EVA00 BATCH=3", "=3"])
def test_a_dotenv_line_that_is_not_key_value_names_the_file_and_line(tmp_path: Path,
                                                                     bad_line: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"# settings\nEVA00_STREAM_BATCH=3\n{bad_line}\n")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, dotenv=path)
    assert caught.value.variable == ".env:3"


def test_a_missing_dotenv_file_is_no_error(tmp_path: Path) -> None:
    assert Settings.from_env({}, dotenv=tmp_path / "absent.env") == Settings()


def test_a_process_with_bad_configuration_exits_78_with_one_line_naming_the_variable(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        load_or_exit({"EVA00_STREAM_BLOCK_MS": "forever"})
    assert caught.value.code == EXIT_CONFIG == 78
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "EVA00_STREAM_BLOCK_MS" in err


def _readme_configuration_rows() -> dict[str, str]:
    text = (ROOT_DIR / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| (.*?) \|", section, flags=re.MULTILINE)
    return {name: default.strip().strip("`") for name, default in rows}


def test_the_readme_lists_every_variable_with_its_default() -> None:
    readme = _readme_configuration_rows()
    expected = {name: (default or "(unset)") for name, default, _doc in settings_table()}
    assert readme == expected


def test_a_plain_http_procore_host_needs_the_explicit_loopback_setting() -> None:
    configured = {**PROCORE_CREDENTIALS, "PROCORE_API_BASE": "http://127.0.0.1:8400"}
    with pytest.raises(ConfigError, match="EVA00_ALLOW_LOOPBACK_URLS") as refused:
        Settings.from_env(configured, dotenv=None)
    assert refused.value.variable == "PROCORE_API_BASE"
    allowed = Settings.from_env({**configured, "EVA00_ALLOW_LOOPBACK_URLS": "1"}, dotenv=None)
    assert allowed.loopback_urls_allowed is True
    assert Settings.from_env(PROCORE_CREDENTIALS, dotenv=None).loopback_urls_allowed is False


def test_the_embedded_stacks_default_ports_are_all_different() -> None:
    defaults = Settings()
    ports = {name: getattr(defaults, name) for name in (
        "embedded_pg_port", "embedded_redis_port", "sim_port", "sim_storage_port", "sim_file_port",
        "webhook_port", "dashboard_port")}
    assert len(set(ports.values())) == len(ports), ports
