"""Settings: read once from the environment (and an optional `.env`) into a frozen object.

Every duration and limit of the seed design has a variable with the production default, so tests
can shrink a 65 s pause or a 12 h keepalive to fractions of a second. A missing or malformed value
stops the process at start with one line naming the variable and exit code ``EXIT_CONFIG`` (78,
EX_CONFIG), which supervisord then reports as FATAL instead of restarting in a loop.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from eva00 import stack_secrets
from eva00.keys import FETCHER_INPUTS

EXIT_CONFIG = 78

# The embedded simulator's identity (its own defaults), used while PROCORE_CLIENT_ID is unset.
SIM_COMPANY_ID = 1000
SIM_CLIENT_ID = "eva00-sim-client"
SIM_CLIENT_SECRET = "eva00-sim-secret"

ROOT_DIR = Path(__file__).resolve().parent.parent

# Procore entity families and their production poll intervals (the seed design's table).
DEFAULT_POLL_INTERVALS_S: Mapping[str, int] = {
    "projects": 3600,
    "submittals": 300,
    "rfis": 300,
    "drawings": 1800,
    "daily_logs": 900,
    "meetings": 1800,
    "change_orders": 900,
    "photos": 1800,
    "documents": 1800,
    "companies": 3600,
    "contacts": 3600,
    "spec_sections": 3600,
    "schedule_tasks": 3600,
}


class ConfigError(Exception):
    """A configuration value is missing or malformed; ``variable`` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL such as https://api.procore.com")
    return value.rstrip("/")


def _dsn(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if urlsplit(value).scheme not in schemes:
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    return parse


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive whole number")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 < number < 65536:
        raise ValueError("must be a TCP port between 1 and 65535")
    return number


def _window(value: str) -> str:
    """'N/WINDOW_S' (positive numbers) or 'off'."""
    text = value.strip().lower()
    if text == "off":
        return text
    limit, sep, window = text.partition("/")
    try:
        if sep and int(limit) > 0 and float(window) > 0:
            return text
    except ValueError:
        pass
    raise ValueError(f"expected N/WINDOW_S such as 100/60, or off; got {value!r}")


def _finite_float(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _tools_off(raw: str) -> str:
    """tool[@all|@N%|@ID+ID],... (the simulator knows the tool names and checks them at start)."""
    entry = r"[a-z_]+(@(all|\d{1,3}%|\d+(\+\d+)*))?"
    if not re.fullmatch(rf"{entry}(,{entry})*", raw.replace(" ", "")):
        raise ValueError("expected tool[@all|@N%|@ID+ID],..., e.g. daily_logs@20%,meetings@10%")
    return raw.replace(" ", "")


def _schedule_mode(raw: str) -> str:
    if raw not in ("adaptive", "fixed"):
        raise ValueError("expected adaptive or fixed")
    return raw


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a positive number")
    return number


def _ratio(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError("must be a number between 0 and 1")
    return number


def _auth_mode(value: str) -> str:
    if value not in ("client_credentials", "authorization_code"):
        raise ValueError("must be client_credentials or authorization_code")
    return value


def _company_id(value: str) -> int:
    return _positive_int(value)


def _comma_list(value: str) -> tuple[str, ...]:
    """``a, b,,c`` -> ('a', 'b', 'c'): host names, secrets."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1/0, true/false, yes/no or on/off; got {value!r}")


def _intervals(value: str) -> dict[str, int]:
    """``rfis=60,submittals=60``: overrides of single entity families' poll intervals."""
    result = dict(DEFAULT_POLL_INTERVALS_S)
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, seconds = item.partition("=")
        if not sep or name not in DEFAULT_POLL_INTERVALS_S:
            raise ValueError(f"unknown entity family {name!r} (known: {', '.join(result)})")
        result[name] = _positive_int(seconds)
    return result


def _fetcher_streams(value: str) -> tuple[str, ...]:
    """A non-empty subset of FETCHER_INPUTS' names, kept in its order whatever order is written."""
    names = {part.strip() for part in value.split(",") if part.strip()}
    if not names or not names <= FETCHER_INPUTS.keys():
        raise ValueError(f"expected a comma-separated subset of {','.join(FETCHER_INPUTS)}; got {value!r}")
    return tuple(name for name in FETCHER_INPUTS if name in names)


def _setting(env: str, parse: Callable[[str], Any], default: Any, doc: str) -> Any:
    metadata = {"env": env, "parse": parse, "doc": doc}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    # --- Procore ---
    procore_api_base: str = _setting(
        "PROCORE_API_BASE", _url, "https://api.procore.com",
        "Procore API host (sandbox: https://sandbox.procore.com). Embedded mode: the simulator.")
    procore_login_base: str = _setting(
        "PROCORE_LOGIN_BASE", _url, "https://login.procore.com",
        "Procore OAuth host. Embedded mode: the simulator.")
    procore_client_id: str = _setting(
        "PROCORE_CLIENT_ID", str, "",
        "OAuth client id. Unset means the embedded simulator is used.")
    procore_client_secret: str = _setting(
        "PROCORE_CLIENT_SECRET", str, "", "OAuth client secret (never logged).")
    procore_company_id: int = _setting(
        "PROCORE_COMPANY_ID", _company_id, 0, "The Procore company to replicate.")
    procore_auth_mode: str = _setting(
        "PROCORE_AUTH_MODE", _auth_mode, "client_credentials",
        "client_credentials (unattended service account) or authorization_code.")
    procore_redirect_uri: str = _setting(
        "PROCORE_REDIRECT_URI", str, "urn:ietf:wg:oauth:2.0:oob",
        "Redirect URI registered for the authorization-code grant.")
    # --- storage and services ---
    database_url: str = _setting(
        "DATABASE_URL", _dsn(("postgresql", "postgres")), "",
        "PostgreSQL URL. Unset: an embedded PostgreSQL under var/pg.")
    redis_url: str = _setting(
        "REDIS_URL", _dsn(("redis", "rediss", "unix")), "",
        "Redis URL. Unset: an embedded Redis under var/redis.")
    database_owner_url: str = _setting(
        "EVA00_DATABASE_OWNER_URL", _dsn(("postgresql", "postgres")), "",
        "PostgreSQL URL of the role owning the schema: applies schema.sql and grants DATABASE_URL's"
        " role what the stages need (`eva00 db init`). Unset: DATABASE_URL's role, or the embedded"
        " owner role.")
    data_dir: Path = _setting(
        "EVA00_DATA_DIR", Path, ROOT_DIR / "var" / "data", "Files, temp files and archives.")
    var_dir: Path = _setting(
        "EVA00_VAR_DIR", Path, ROOT_DIR / "var",
        "Runtime state: logs, supervisor socket, embedded databases.")
    embedded_pg_port: int = _setting(
        "EVA00_PG_PORT", _port, 25432,
        "Port of the embedded PostgreSQL (below the kernel's ephemeral range, so no client takes it).")
    embedded_redis_port: int = _setting(
        "EVA00_REDIS_PORT", _port, 26379, "Port of the embedded Redis.")
    sim_port: int = _setting(
        "EVA00_SIM_PORT", _port, 8400, "Port of the embedded simulator's API and login host.")
    sim_storage_port: int = _setting(
        "EVA00_SIM_STORAGE_PORT", _port, 8402, "Port of the embedded simulator's storage host.")
    sim_file_port: int = _setting(
        "EVA00_SIM_FILE_PORT", _port, 8404,
        "Port of the embedded simulator's file host (record file URLs; bearer token, then a redirect).")
    sim_projects: int = _setting(
        "EVA00_SIM_PROJECTS", _positive_int, 20, "Projects in the embedded simulator.")
    sim_items: int = _setting(
        "EVA00_SIM_ITEMS", _positive_int, 5000, "Items in the embedded simulator.")
    sim_rate_limit: str = _setting(
        "EVA00_SIM_RATE_LIMIT", _window, "100/60",
        "The embedded simulator's rate limit, N/WINDOW_S ('off': no limits; `make demo` uses 1000/60).")
    sim_spike: str = _setting(
        "EVA00_SIM_SPIKE", _window, "25/10", "The embedded simulator's spike window, N/WINDOW_S or 'off'.")
    sim_clock_offset_s: float = _setting(
        "EVA00_SIM_CLOCK_OFFSET_S", _finite_float, 0.0,
        "The embedded simulator's clock runs this far ahead of the host's (negative: behind).")
    sim_tools_off: str = _setting(
        "EVA00_SIM_TOOLS_OFF", _tools_off, "",
        "Tools the embedded simulator switches off, e.g. daily_logs@20%,meetings@10% (403 there).")
    # --- stream bus ---
    stream_block_ms: int = _setting(
        "EVA00_STREAM_BLOCK_MS", _positive_int, 2000,
        "Longest blocking read; bounds how long SIGTERM waits.")
    stream_batch: int = _setting(
        "EVA00_STREAM_BATCH", _positive_int, 10, "Entries read per XREADGROUP.")
    claim_idle_ms: int = _setting(
        "EVA00_CLAIM_IDLE_MS", _positive_int, 60000,
        "Idle time after which a dead peer's entries are reclaimed.")
    max_deliveries: int = _setting(
        "EVA00_MAX_DELIVERIES", _positive_int, 5,
        "Deliveries before a message goes to the dead letters.")
    stream_maxlen: int = _setting(
        "EVA00_STREAM_MAXLEN", _positive_int, 100000,
        "Approximate length streams are trimmed to (never past unacknowledged entries).")
    outage_backoff_cap_s: float = _setting(
        "EVA00_OUTAGE_BACKOFF_CAP_S", _positive_float, 30.0,
        "Longest wait between reconnect attempts to Redis or PostgreSQL.")
    # --- Procore client and rate limits ---
    http_timeout_s: float = _setting(
        "EVA00_HTTP_TIMEOUT_S", _positive_float, 60.0, "Timeout of one HTTP request to Procore.")
    rate_burst: int = _setting(
        "EVA00_RATE_BURST", _positive_int, 8,
        "Token bucket size (8 + 1.58/s: at most 23 in any 10 s, under the 25-per-10-s spike limit).")
    rate_refill_per_s: float = _setting(
        "EVA00_RATE_REFILL_PER_S", _positive_float, 1.58,
        "Token bucket refill rate (94.8 a minute: 0.95 of the 100-per-60-s limit).")
    rate_window_max: int = _setting(
        "EVA00_RATE_WINDOW_MAX", _positive_int, 95, "Hard cap of requests in any sliding window.")
    rate_window_s: float = _setting(
        "EVA00_RATE_WINDOW_S", _positive_float, 60.0, "Length of that sliding window.")
    budget_scheduled_per_min: int = _setting(
        "EVA00_BUDGET_SCHEDULED_PER_MIN", _positive_int, 60, "Budget of scheduled polling.")
    budget_webhook_per_min: int = _setting(
        "EVA00_BUDGET_WEBHOOK_PER_MIN", _positive_int, 15, "Budget of webhook-triggered fetches.")
    budget_on_demand_per_min: int = _setting(
        "EVA00_BUDGET_ON_DEMAND_PER_MIN", _positive_int, 15, "Budget of on-demand refreshes.")
    budget_buffer_per_min: int = _setting(
        "EVA00_BUDGET_BUFFER_PER_MIN", _positive_int, 10, "Reserve kept free of every class.")
    connection_error_pause_s: float = _setting(
        "EVA00_CONNECTION_ERROR_PAUSE_S", _positive_float, 65.0,
        "Pause of every process after a connection error to Procore.")
    bad_answer_retry_s: float = _setting(
        "EVA00_BAD_ANSWER_RETRY_S", _positive_float, 5.0,
        "Wait before asking again for a page or record whose answer was broken (not JSON, wrong shape).")
    keepalive_interval_s: float = _setting(
        "EVA00_KEEPALIVE_INTERVAL_S", _positive_float, 43200.0,
        "Token refresh interval regardless of sync activity (12 h).")
    # --- sync ---
    poll_intervals_s: dict[str, int] = _setting(
        "EVA00_POLL_INTERVALS", _intervals, dict(DEFAULT_POLL_INTERVALS_S),
        "Overrides of poll intervals per family, e.g. rfis=60,submittals=60.")
    poll_lookback_s: float = _setting(
        "EVA00_POLL_LOOKBACK_S", _positive_float, 120.0,
        "Incremental windows start this long before the cursor.")
    poll_safety_margin_s: float = _setting(
        "EVA00_POLL_SAFETY_MARGIN_S", _positive_float, 5.0,
        "Incremental windows end this long before the server's Date.")
    reconcile_interval_s: float = _setting(
        "EVA00_RECONCILE_INTERVAL_S", _positive_float, 86400.0,
        "Delete reconciliation interval per entity type.")
    unavailable_recheck_s: float = _setting(
        "EVA00_UNAVAILABLE_RECHECK_S", _positive_float, 86400.0,
        "A tool Procore refuses in a project (403/404) is asked again after this long.")
    schedule_mode: str = _setting(
        "EVA00_SCHEDULE", _schedule_mode, "adaptive",
        "adaptive: each (kind, project) polled as often as it changes, within the scheduled budget"
        " (README: how often each kind is polled); fixed: every pair at its family's interval.")
    max_staleness_s: float = _setting(
        "EVA00_MAX_STALENESS_S", _positive_float, 86400.0,
        "Longest a quiet (kind, project) or an inactive project goes unpolled (adaptive schedule).")
    active_window_s: float = _setting(
        "EVA00_ACTIVE_WINDOW_S", _positive_float, 86400.0,
        "A (kind, project) with a change found this recently is polled at its family's interval.")
    plan_tick_s: float = _setting(
        "EVA00_PLAN_TICK_S", _positive_float, 5.0,
        "How often the adaptive scheduler enqueues the due pairs its budget allows.")
    fullsync_step_s: float = _setting(
        "EVA00_FULLSYNC_STEP_S", _positive_float, 5.0,
        "How often the scheduler advances a running full sync (its next phase, lost jobs).")
    fetcher_streams: tuple[str, ...] = _setting(
        "EVA00_FETCHER_STREAMS", _fetcher_streams, tuple(FETCHER_INPUTS),
        "Streams a fetcher reads, priority first: priority,scheduled or one (fetcher_priority: priority).")
    mass_delete_ratio: float = _setting(
        "EVA00_MASS_DELETE_RATIO", _ratio, 0.10,
        "A reconciliation missing more than this share only flags them; the next one confirms.")
    # --- files ---
    download_concurrency: int = _setting(
        "EVA00_DOWNLOAD_CONCURRENCY", _positive_int, 3, "Downloads at once across all downloaders.")
    download_requeue_after_s: float = _setting(
        "EVA00_DOWNLOAD_REQUEUE_AFTER_S", _positive_float, 600.0,
        "A link pending this long with no job (Redis lost it) is queued again.")
    download_housekeeping_s: float = _setting(
        "EVA00_DOWNLOAD_HOUSEKEEPING_S", _positive_float, 60.0,
        "How often a downloader looks for such links and purges stale temp files.")
    disk_free_min_ratio: float = _setting(
        "EVA00_DISK_FREE_MIN_RATIO", _ratio, 0.20, "Below this share of free disk downloads pause.")
    storage_hosts: tuple[str, ...] = _setting(
        "EVA00_STORAGE_HOSTS", _comma_list, ("storage.procore.com",),
        "Hosts attachment links from cover sheets may be fetched from (https only).")
    bearer_hosts: tuple[str, ...] = _setting(
        "EVA00_BEARER_HOSTS", _comma_list, ("*.procore.com",),
        "Besides the API and login hosts, the hosts a file URL may carry the bearer token to (https "
        "only): host, host:port or *.domain. Embedded mode adds the simulator's file host.")
    allow_loopback_urls: bool = _setting(
        "EVA00_ALLOW_LOOPBACK_URLS", _flag, False,
        "Allow http and loopback addresses (the simulator). Embedded mode turns it on; never in production.")
    download_max_bytes: int = _setting(
        "EVA00_DOWNLOAD_MAX_BYTES", _positive_int, 10 * 1024**3,
        "A file larger than this fails (status failed, an alert) instead of filling the disk.")
    download_deadline_s: float = _setting(
        "EVA00_DOWNLOAD_DEADLINE_S", _positive_float, 6 * 3600.0,
        "Longest one download attempt may take, redirects included.")
    download_min_rate_bytes_s: int = _setting(
        "EVA00_DOWNLOAD_MIN_RATE_BYTES_S", _positive_int, 16 * 1024,
        "A download slower than this over EVA00_DOWNLOAD_RATE_WINDOW_S is cut (a slow drip).")
    download_rate_window_s: float = _setting(
        "EVA00_DOWNLOAD_RATE_WINDOW_S", _positive_float, 60.0,
        "The window the minimum download rate is measured over.")
    # --- untrusted documents (thumbnails, text): PyMuPDF runs in a child process per file ---
    document_sandbox_memory_bytes: int = _setting(
        "EVA00_DOCUMENT_SANDBOX_MEMORY_BYTES", _positive_int, 1024 * 1024 * 1024,
        "Address space of the child that opens one PDF or image (RLIMIT_AS); beyond it the file is"
        " quarantined.")
    document_sandbox_cpu_s: int = _setting(
        "EVA00_DOCUMENT_SANDBOX_CPU_S", _positive_int, 60,
        "CPU seconds that child may use on one file (RLIMIT_CPU); beyond them the file is quarantined.")
    document_sandbox_timeout_s: float = _setting(
        "EVA00_DOCUMENT_SANDBOX_TIMEOUT_S", _positive_float, 120.0,
        "Wall-clock seconds for one file; then the child is killed and the file quarantined.")
    image_max_pixels: int = _setting(
        "EVA00_IMAGE_MAX_PIXELS", _positive_int, 100_000_000,
        "Images (and images on a PDF's first page) with more pixels are quarantined undecoded.")
    # --- webhooks, dashboard, retention ---
    webhook_host: str = _setting(
        "EVA00_WEBHOOK_HOST", str, "127.0.0.1", "Address of the webhook listener.")
    webhook_port: int = _setting(
        "EVA00_WEBHOOK_PORT", _port, 8401, "Port of the webhook listener.")
    webhook_secrets: tuple[str, ...] = _setting(
        "EVA00_WEBHOOK_SECRETS", _comma_list, (),
        "Accepted Authorization values, comma separated (rotation: old and new).")
    webhook_hmac_secret: str = _setting(
        "EVA00_WEBHOOK_HMAC_SECRET", str, "",
        "If set, an HMAC-SHA256 signature header over the body is required too.")
    webhook_debounce_ttl_s: float = _setting(
        "EVA00_WEBHOOK_DEBOUNCE_TTL_S", _positive_float, 3600.0,
        "Longest a queued webhook fetch absorbs further events for the same record.")
    webhook_threads: int = _setting(
        "EVA00_WEBHOOK_THREADS", _positive_int, 8, "Worker threads of the webhook listener.")
    webhook_read_timeout_s: float = _setting(
        "EVA00_WEBHOOK_READ_TIMEOUT_S", _positive_float, 10.0,
        "Whole-request read deadline of the webhook listener (slow clients are cut).")
    webhook_requeue_interval_s: float = _setting(
        "EVA00_WEBHOOK_REQUEUE_INTERVAL_S", _positive_float, 60.0,
        "How often webhook events recorded but not yet queued are queued again.")
    webhook_jobs_per_minute: int = _setting(
        "EVA00_WEBHOOK_JOBS_PER_MINUTE", _positive_int, 60,
        "Most single-record fetches webhooks may queue per minute; beyond it, events fold into"
        " one poll per (project, kind).")
    dashboard_port: int = _setting(
        "EVA00_DASHBOARD_PORT", _port, 8403, "Port of the dashboard (127.0.0.1 only).")
    dashboard_hosts: tuple[str, ...] = _setting(
        "EVA00_DASHBOARD_HOSTS", _comma_list, (),
        "Extra Host names the dashboard answers (a reverse proxy's), comma separated; others get 421.")
    sync_log_retention_days: int = _setting(
        "EVA00_SYNC_LOG_RETENTION_DAYS", _positive_int, 90,
        "sync_log rows older than this are archived, then removed.")
    webhook_events_retention_days: int = _setting(
        "EVA00_WEBHOOK_EVENTS_RETENTION_DAYS", _positive_int, 90,
        "Finished webhook_events rows older than this are removed (housekeeping).")

    @property
    def embedded_simulator(self) -> bool:
        return not self.procore_client_id

    @property
    def embedded_postgres(self) -> bool:
        return not self.database_url

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}" if self.embedded_simulator else self.procore_api_base

    @property
    def login_base(self) -> str:
        return (f"http://127.0.0.1:{self.sim_port}" if self.embedded_simulator
                else self.procore_login_base)

    @property
    def loopback_urls_allowed(self) -> bool:
        """http and loopback addresses: the embedded simulator, or an explicit EVA00_ALLOW_LOOPBACK_URLS."""
        return self.allow_loopback_urls or self.embedded_simulator

    @property
    def effective_bearer_hosts(self) -> tuple[str, ...]:
        if self.embedded_simulator:
            return (*self.bearer_hosts, f"127.0.0.1:{self.sim_file_port}")
        return self.bearer_hosts

    @property
    def client_id(self) -> str:
        return self.procore_client_id or SIM_CLIENT_ID

    @property
    def client_secret(self) -> str:
        return self.procore_client_secret or SIM_CLIENT_SECRET

    @property
    def company_id(self) -> int:
        return self.procore_company_id or SIM_COMPANY_ID

    @property
    def secrets_dir(self) -> Path:
        """The embedded stack's generated passwords (0700; files 0600)."""
        return self.var_dir / "secrets"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or self._embedded_pg_url(stack_secrets.PG_APP_ROLE)

    @property
    def effective_owner_url(self) -> str:
        """Who applies schema.sql: the owner role, else DATABASE_URL's own role (it must own it)."""
        return (self.database_owner_url or self.database_url
                or self._embedded_pg_url(stack_secrets.PG_OWNER_ROLE))

    def _embedded_pg_url(self, role: str) -> str:
        # No password in the URL: libpq reads it from the 0600 passfile, so the URL can be passed
        # to child processes and shown in errors without leaking it.
        passfile = quote(str(self.secrets_dir / stack_secrets.PGPASS), safe="/")
        return f"postgresql://{role}@127.0.0.1:{self.embedded_pg_port}/eva00?passfile={passfile}"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or self._embedded_redis_url(stack_secrets.REDIS_APP_USER,
                                                           stack_secrets.REDIS_APP)

    @property
    def redis_admin_url(self) -> str:
        """The embedded Redis's admin user (FLUSHALL, CONFIG): maintenance and tests, never stages."""
        return self.redis_url or self._embedded_redis_url(stack_secrets.REDIS_ADMIN_USER,
                                                           stack_secrets.REDIS_ADMIN)

    def _embedded_redis_url(self, user: str, secret_name: str) -> str:
        password = stack_secrets.read_secret(self.secrets_dir / secret_name)
        login = f"{user}:{quote(password, safe='')}@" if password else ""
        return f"redis://{login}127.0.0.1:{self.embedded_redis_port}/0"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 dotenv: Path | None = ROOT_DIR / ".env") -> Settings:
        """Parse the environment (over an optional `.env`); raise ConfigError on the first bad value."""
        parsed, problems = cls._parse(_raw_values(environ, dotenv))
        if problems:
            raise problems[0]
        settings = cls(**parsed)
        settings.validate()
        return settings

    @classmethod
    def problems(cls, environ: Mapping[str, str] | None = None,
                 dotenv: Path | None = ROOT_DIR / ".env") -> list[ConfigError]:
        """Every malformed value at once (from_env stops at the first), then validate()'s."""
        try:
            parsed, problems = cls._parse(_raw_values(environ, dotenv))
        except ConfigError as exc:  # a malformed .env line
            return [exc]
        if not problems:
            try:
                cls(**parsed).validate()
            except ConfigError as exc:
                problems.append(exc)
        return problems

    @classmethod
    def _parse(cls, values: Mapping[str, str]) -> tuple[dict[str, Any], list[ConfigError]]:
        parsed: dict[str, Any] = {}
        problems: list[ConfigError] = []
        for item in dataclasses.fields(cls):
            raw = values.get(item.metadata["env"], "")
            if raw == "":
                continue
            try:
                parsed[item.name] = item.metadata["parse"](raw)
            except ValueError as exc:
                problems.append(ConfigError(item.metadata["env"], str(exc) or "malformed value"))
        return parsed, problems

    def validate(self) -> None:
        if self.embedded_simulator:
            return
        if not self.procore_client_secret:
            raise ConfigError("PROCORE_CLIENT_SECRET", "required when PROCORE_CLIENT_ID is set")
        if not self.procore_company_id:
            raise ConfigError("PROCORE_COMPANY_ID", "required when PROCORE_CLIENT_ID is set")
        for variable, base in (("PROCORE_API_BASE", self.procore_api_base),
                               ("PROCORE_LOGIN_BASE", self.procore_login_base)):
            if base.startswith("http://") and not self.allow_loopback_urls:
                raise ConfigError(variable, "plain http is allowed only with EVA00_ALLOW_LOOPBACK_URLS=1 "
                                            "(a simulator on this machine)")


def _raw_values(environ: Mapping[str, str] | None, dotenv: Path | None) -> dict[str, str]:
    values: dict[str, str] = dict(read_dotenv(dotenv)) if dotenv else {}
    values.update(os.environ if environ is None else environ)
    return values


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments; optional quotes. No interpolation, on purpose."""
    if not path.is_file():
        return {}
    result: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.removeprefix("export ").partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path.name}:{number}", "expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[key.strip()] = value
    return result


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting: the README's configuration table."""
    rows = []
    for item in dataclasses.fields(Settings):
        default: Any = item.default
        if default is dataclasses.MISSING:
            default = item.default_factory()  # type: ignore[operator]
        if isinstance(default, Path):
            default = str(default.relative_to(ROOT_DIR)) if default.is_relative_to(ROOT_DIR) else default
        elif isinstance(default, tuple):
            default = ",".join(default)
        elif isinstance(default, dict):
            default = "(the seed's table)"
        rows.append((item.metadata["env"], str(default), item.metadata["doc"]))
    return rows


def load_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """For process entry points: one clear line and EXIT_CONFIG on bad configuration."""
    import sys

    # Every program and CLI command starts here: whatever it writes (logs, files, resume state,
    # secrets) is its owner's alone.
    os.umask(0o077)
    try:
        return Settings.from_env(environ)
    except ConfigError as exc:
        print(f"eva00: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
