"""`eva00 doctor`: is this host ready to replicate, and if not, what to change.

Each check is one small function of the shared Context returning a CheckResult: PASS, WARN or
FAIL, one line of detail and, for WARN and FAIL, the fix. They run in the order of CHECKS. A check
whose prerequisite failed (or was itself skipped) is reported as WARN "skipped: needs ..." instead
of being run, and a check that raises becomes a FAIL line: the runner is the loop boundary, so no
traceback reaches the operator. The judgements are pure functions (eva00/ops/doctor_verdicts.py).

Procore is asked through the product's client (eva00/ops/doctor_probe.py) nine questions: /me,
the companies list, one project, four of its tools' lists (one record each), our webhook hooks
and one hook's deliveries; in client-credentials mode one grant at the token endpoint comes first,
so wrong credentials are reported without halting every process. The rate-limit and clock checks
read the headers of those same answers. The doctor changes nothing at Procore or in the replica;
like any process it may renew the shared access token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg_pool import ConnectionPool

from eva00.config import ROOT_DIR, SIM_COMPANY_ID, Settings
from eva00.ops.doctor_probe import ProcoreProbe, Recorder, Reply
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
)
from eva00.ops.status import read_disk
from eva00.procore import build_client
from eva00.procore.endpoints import ENDPOINTS
from eva00.procore.keys import as_text
from eva00.procore.tokens import AUTHORIZATION_CODE, CLIENT_CREDENTIALS
from eva00.runtime import db
from eva00.runtime.process import redis_client
from eva00.webhooks.options import NAMESPACE, SECRETS_FILE_NAME
from eva00.webhooks.register import ApiError, HooksApi

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
PG_MIN_VERSION = 140000  # server_version_num of 14.0: what the embedded stack is built on
REDIS_MIN_VERSION = (6, 2)  # XAUTOCLAIM
CLIENT_MAX_ATTEMPTS = 3  # the doctor asks each question at most this often (the product: 6)
CLOCK_WARN_AFTER_S = 2.0  # an offset surely past this is worth fixing, even below the margin
ME, COMPANIES, PROJECTS = "/rest/v1.0/me", "/rest/v1.0/companies", "/rest/v1.1/projects"
# The tools asked in the sample project: (label, kind of eva00/procore/endpoints.py).
TOOLS = (("submittals", "submittal"), ("rfis", "rfi"), ("drawings", "drawing_revision"),
         ("documents", "document"))


# --- what the checks share ---

@dataclass
class Context:
    """Filled as the checks run: settings by the first, services by the next ones."""

    environ: Mapping[str, str] | None = None  # None: the process environment
    dotenv: Path | None = ROOT_DIR / ".env"
    project_id: int | None = None  # the sample project of the tools check (None: the first)
    clock: Callable[[], float] = time.time
    settings: Settings | None = None
    redis: redis.Redis | None = None
    pool: ConnectionPool | None = None
    procore: ProcoreProbe | None = None
    me: Reply | None = None

    def need_settings(self) -> Settings:
        if self.settings is None:
            raise RuntimeError("a check ran before the configuration check")
        return self.settings

    def need(self) -> tuple[Settings, ProcoreProbe]:
        if self.procore is None:
            raise RuntimeError("a check ran before the procore check")
        return self.need_settings(), self.procore

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close(timeout=2.0)
        if self.redis is not None:
            self.redis.close()


def redact_url(url: str) -> str:
    """A database or Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


def _start_fix(settings: Settings, service: str) -> str:
    if service == "postgresql" and settings.embedded_postgres:
        return ("start the stack: `make up` (the embedded PostgreSQL listens on"
                f" EVA00_PG_PORT={settings.embedded_pg_port})")
    if service == "redis" and settings.embedded_redis:
        return ("start the stack: `make up` (the embedded Redis listens on"
                f" EVA00_REDIS_PORT={settings.embedded_redis_port})")
    variable = "DATABASE_URL" if service == "postgresql" else "REDIS_URL"
    return f"check {variable} and that the server accepts connections from this host"


# --- the checks, in order ---

def check_configuration(ctx: Context) -> CheckResult:
    problems = Settings.problems(ctx.environ, ctx.dotenv)
    if problems:
        return CheckResult("configuration", Status.FAIL, f"{len(problems)} invalid: "
                           + "; ".join(str(p) for p in problems), "correct them in .env or the"
                           " environment (`eva00 config` lists every variable with its meaning)")
    ctx.settings = settings = Settings.from_env(ctx.environ, ctx.dotenv)
    target = "the embedded simulator" if settings.embedded_simulator else settings.api_base
    detail = f"every setting valid; {target}, company {settings.company_id}"
    secrets = [path for path in (ctx.dotenv, settings.var_dir / SECRETS_FILE_NAME) if path and path.is_file()]
    loose = loose_modes({path: path.stat().st_mode & 0o777 for path in secrets})
    if loose:
        listed = ", ".join(f"{path} ({mode:04o})" for path, mode in loose.items())
        return CheckResult("configuration", Status.WARN, f"{detail}; secrets readable by others: {listed}",
                           "chmod 600 " + " ".join(str(path) for path in loose))
    return CheckResult("configuration", Status.PASS, detail + (
        f"; secrets files 0600: {', '.join(p.name for p in secrets)}" if secrets else ""))


def check_postgresql(ctx: Context) -> CheckResult:
    settings = ctx.need_settings()
    where = redact_url(settings.effective_database_url)
    try:
        with psycopg.connect(settings.effective_database_url, connect_timeout=CONNECT_TIMEOUT_S,
                             application_name="eva00-doctor") as conn:
            version = conn.info.server_version
            row = conn.execute("SELECT to_regclass('oauth_tokens') IS NOT NULL").fetchone()
    except psycopg.Error as exc:
        return CheckResult("postgresql", Status.FAIL, f"{where} does not answer: {first_line(exc)}",
                           _start_fix(settings, "postgresql"))
    text = f"PostgreSQL {version // 10000}.{version % 10000}"
    if version < PG_MIN_VERSION:
        return CheckResult("postgresql", Status.FAIL, f"{where}: {text}; EVA-00 needs 14 or newer",
                           "upgrade the server, or unset DATABASE_URL to use the embedded one")
    if not (row and row[0]):
        return CheckResult("postgresql", Status.FAIL, f"{where}: {text}, but the schema is not applied",
                           "run `eva00 db init` (every stage also applies it when it starts)")
    return CheckResult("postgresql", Status.PASS, f"{where}: {text}, schema applied")


def check_redis(ctx: Context) -> CheckResult:
    settings = ctx.need_settings()
    where = redact_url(settings.effective_redis_url)
    client = redis_client(settings)
    try:
        version = str(client.info("server")["redis_version"])
    except redis.RedisError as exc:
        client.close()
        return CheckResult("redis", Status.FAIL, f"{where} does not answer: {first_line(exc)}",
                           _start_fix(settings, "redis"))
    ctx.redis = client
    if tuple(int(part) for part in version.split(".")[:2]) < REDIS_MIN_VERSION:
        return CheckResult("redis", Status.FAIL, f"{where}: Redis {version}; EVA-00 needs 6.2 or"
                           " newer (XAUTOCLAIM)", "upgrade Redis, or unset REDIS_URL to use the embedded one")
    return CheckResult("redis", Status.PASS, f"{where}: Redis {version}")


def check_procore(ctx: Context) -> CheckResult:
    probe = _open_procore(ctx)
    settings = probe.client.settings
    ctx.me = _ask_me(probe)
    api, login = probe.api_answers(), probe.login_answers()
    if api:
        return CheckResult("procore", Status.PASS, f"{settings.api_base} answered {api[0].status}"
                           f" in {api[0].elapsed_s * 1000:.0f} ms")
    if login and (ctx.me.halted or ctx.me.status in (400, 401)):  # refused at the token endpoint
        return CheckResult("procore", Status.PASS, f"{settings.login_base} answered the token"
                           f" request ({login[-1].status})")
    if ctx.me.halted:
        return CheckResult("procore", Status.WARN, "not asked: Procore calls are held back",
                           "see the token check below")
    fix = ("start the stack: `make up` (the embedded simulator listens on"
           f" EVA00_SIM_PORT={settings.sim_port})" if settings.embedded_simulator else
           f"check PROCORE_API_BASE ({settings.api_base}), PROCORE_LOGIN_BASE ({settings.login_base})"
           " and this host's network (proxy, firewall, DNS)")
    if other := _other_rate_settings(probe):
        return CheckResult("procore", Status.FAIL, f"not asked: {other}",
                           "run the doctor with the environment the stack was started with"
                           " (`make doctor` does, after `make demo` too)")
    note = _pause_note(probe)
    detail = f"no answer from {settings.api_base}{note}" if note else f"no answer: {ctx.me.problem}"
    return CheckResult("procore", Status.FAIL, detail, fix)


def _other_rate_settings(probe: ProcoreProbe) -> str:
    """Why this shell's limiter cannot get a token while the stack's processes can, if so.

    The window is shared in Redis but its size is each process's own setting: a stack started
    with a larger limit (make demo's) fills more of it than this shell's settings ever allow.
    """
    limiter = probe.client.limiter
    used = limiter.window_count()
    if used <= limiter.config.window_max:
        return ""
    return (f"the shared rate window holds {used} requests of the last {limiter.config.window_s:.0f} s,"
            f" more than this shell's EVA00_RATE_WINDOW_MAX={limiter.config.window_max}: the running"
            " stack uses other rate-limit settings")


def _ask_me(probe: ProcoreProbe) -> Reply:
    """GET /me, unless Procore calls are held back or the client credentials are refused."""
    blocked = _auth_blocked(probe)
    if blocked:
        return Reply(0, problem=blocked, halted=True)
    if probe.client.settings.procore_auth_mode == CLIENT_CREDENTIALS:
        grant = probe.try_credentials()
        if not grant.ok:
            return grant
    return probe.ask(ME)


def _pause_note(probe: ProcoreProbe) -> str:
    """The shared pause a failed call left behind (every process waits it out), if any."""
    limiter = probe.client.limiter
    left_s = limiter.paused_for_s()
    if left_s <= 0:
        return ""
    reason = limiter.redis.get(limiter.keys.pause_reason)
    why = f" ({as_text(reason)})" if reason else ""
    return f"; every process holds off Procore {left_s:.0f} s more{why}"


def _open_procore(ctx: Context) -> ProcoreProbe:
    settings = ctx.need_settings()
    if ctx.redis is None:
        raise RuntimeError("the procore check ran before the redis check")
    ctx.pool = db.make_pool(settings, max_size=2, name="eva00-doctor")
    recorder = Recorder(ctx.clock)
    client = build_client(settings, ctx.redis, ctx.pool, session=recorder.session())
    client.max_attempts = CLIENT_MAX_ATTEMPTS
    ctx.procore = ProcoreProbe(client, recorder)
    return ctx.procore


def _auth_blocked(probe: ProcoreProbe) -> str:
    """Why no process may call Procore now ("" when nothing stops it), read without calling."""
    halted = probe.client.auth.halted_reason()
    if halted:
        return f"Procore calls are halted: {halted}"
    if probe.client.settings.procore_auth_mode == AUTHORIZATION_CODE:
        stored = probe.client.auth.status()
        if stored is None or not stored.refresh_token:
            return "no Procore login stored yet (PROCORE_AUTH_MODE=authorization_code)"
    return ""


def _halt_fix(settings: Settings) -> str:
    if settings.procore_auth_mode != CLIENT_CREDENTIALS:
        return "run `eva00 auth login` and approve as the integration user"
    return ("check PROCORE_CLIENT_ID and PROCORE_CLIENT_SECRET (a rotated secret?); after a rejection"
            " Procore calls stay halted for 5 minutes, then the next call tries again")


def check_token(ctx: Context) -> CheckResult:
    settings, probe = ctx.need()
    me = ctx.me or Reply(0, problem="not asked")
    if me.halted:
        return CheckResult("token", Status.FAIL, me.problem, _halt_fix(settings))
    if me.status in (400, 401):
        return CheckResult("token", Status.FAIL, f"Procore rejects the credentials: {me.problem}",
                           "check PROCORE_CLIENT_ID and PROCORE_CLIENT_SECRET (a rotated secret?)")
    if me.status == 403:
        return CheckResult("token", Status.FAIL, f"Procore refuses company {settings.company_id}"
                           f" ({me.problem})", _company_fix(settings))
    if not me.ok:
        return CheckResult("token", Status.FAIL, f"{ME} did not answer: {me.problem}",
                           "run `eva00 doctor` again later; `eva00 status` shows Procore's errors")
    return judge_company(settings.company_id, me.body, probe.ask(COMPANIES))


def _company_fix(settings: Settings) -> str:
    if settings.embedded_simulator:
        return f"unset PROCORE_COMPANY_ID (the embedded simulator's company is {SIM_COMPANY_ID})"
    return ("set PROCORE_COMPANY_ID to the company the app is installed in (Procore: Company Admin >"
            " App Management; the id is the number after /companies/ in Procore's URLs), or install"
            f" the app in company {settings.company_id}")


def check_tools(ctx: Context) -> CheckResult:
    settings, probe = ctx.need()
    if ctx.project_id is not None:
        project_id, project = ctx.project_id, str(ctx.project_id)
    else:
        listed = probe.ask(PROJECTS, {"company_id": settings.company_id, "per_page": 1, "page": 1})
        first = listed.body[0] if listed.ok and isinstance(listed.body, list) and listed.body else None
        if not isinstance(first, dict) or not str(first.get("id", "")).isdigit():
            return CheckResult("tools", Status.WARN, f"no project listed in company"
                               f" {settings.company_id} ({listed.problem or 'none visible'})",
                               "add the service account to the projects to replicate (Procore:"
                               " each project's Directory)")
        project_id, project = int(first["id"]), f"{first['id']} ({first.get('name')})"
    replies = []
    for label, kind in TOOLS:
        path, query = ENDPOINTS[kind].list_request(company_id=settings.company_id, project_id=project_id)
        replies.append((label, probe.ask(path, {**query, "per_page": 1, "page": 1})))
    return judge_tools(project, replies)


def check_rate_limit(ctx: Context) -> CheckResult:
    _, probe = ctx.need()
    asked = len(probe.api_answers())
    if not asked:
        return skipped("rate limit", ["procore"])
    seen = probe.api_answers(header="X-Rate-Limit-Limit")
    answer = seen[-1] if seen else None
    status, detail = judge_rate(answer.headers if answer else {})
    detail += f" (after the doctor's {asked} request{'' if asked == 1 else 's'})"
    fix = ("" if status is Status.PASS else "another app or process on these credentials uses the"
           " window: the limiter slows down by itself; check the budgets (EVA00_BUDGET_*) if it lasts")
    if answer is None:
        fix = "a proxy in front of Procore may strip them: the limiter then runs on its settings alone"
    return CheckResult("rate limit", status, detail, fix)


def check_clock(ctx: Context) -> CheckResult:
    settings, probe = ctx.need()
    if not probe.recorder.answers:
        return skipped("clock", ["procore"])
    dated = probe.api_answers(header="Date") or probe.login_answers(header="Date")
    answer = dated[-1] if dated else None
    measured = answer and clock_offset(answer.headers["Date"], answer.received_at_s, answer.elapsed_s)
    if not measured:
        return CheckResult("clock", Status.WARN, "no readable Date header from Procore",
                           "keep this host's clock synchronised (NTP)")
    status, detail = judge_clock(*measured, warn_after_s=CLOCK_WARN_AFTER_S,
                                 fail_after_s=settings.poll_safety_margin_s)
    fix = ("synchronise this host's clock (`timedatectl set-ntp true`, chrony): incremental windows end"
           f" EVA00_POLL_SAFETY_MARGIN_S={settings.poll_safety_margin_s:g} s before the server's time")
    return CheckResult("clock", status, detail, fix if status is not Status.PASS else "")


def check_webhook(ctx: Context) -> CheckResult:
    settings, probe = ctx.need()

    def call(method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        if method != "GET":
            raise ValueError("the doctor only reads")
        reply = probe.ask(path, params)
        if not reply.ok:
            raise ApiError(reply.status, reply.problem)
        return reply.body

    api = HooksApi(call, settings.company_id, NAMESPACE)
    try:
        hooks = api.hooks()
        if not hooks:
            return CheckResult("webhook", Status.WARN, f"no hook in namespace {NAMESPACE}: changes"
                               " arrive by polling only", "expose the listener (docs/cloudflare-tunnel.md),"
                               " then `eva00 webhooks register --url https://.../webhooks/procore`")
        return judge_deliveries(hooks[0], api.deliveries(int(hooks[0]["id"]), limit=10))
    except ApiError as exc:
        return CheckResult("webhook", Status.WARN, f"the webhooks API did not answer: {exc}",
                           "give the app the webhooks permission in Procore; polling keeps the"
                           " replica complete meanwhile")


def check_disk(ctx: Context) -> CheckResult:
    settings = ctx.need_settings()
    disk = read_disk(settings.data_dir)
    status, detail = judge_disk(int(disk["free_bytes"]), int(disk["total_bytes"]),
                                settings.disk_free_min_ratio)
    fix = f"free space on the disk of {settings.data_dir}, or move EVA00_DATA_DIR to a larger one"
    return CheckResult("disk", status, f"{settings.data_dir}: {detail}",
                       fix if status is not Status.PASS else "")


def check_data_dir(ctx: Context) -> CheckResult:
    path = ctx.need_settings().data_dir
    if not path.is_dir():
        return CheckResult("data dir", Status.WARN, f"{path} does not exist yet",
                           f"mkdir -p -m 700 {path} (the stack creates it otherwise, readable by others)")
    mode = path.stat().st_mode & 0o777
    if loose_modes({path: mode}):
        return CheckResult("data dir", Status.WARN, f"{path} is {mode:04o}: group or others can read"
                           " the replicated files", f"chmod -R go-rwx {path}")
    return CheckResult("data dir", Status.PASS, f"{path} is {mode:04o}")


# --- the runner ---

@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Context], CheckResult]
    needs: tuple[str, ...] = ()


NEEDS = {"configuration": "a valid configuration", "postgresql": "PostgreSQL (the token store)",
         "redis": "Redis (the shared rate limiter)", "procore": "an answer from Procore",
         "token": "a token valid for the company"}
CHECKS = (
    Check("configuration", check_configuration),
    Check("postgresql", check_postgresql, ("configuration",)),
    Check("redis", check_redis, ("configuration",)),
    Check("procore", check_procore, ("postgresql", "redis")),
    Check("token", check_token, ("procore",)),
    Check("tools", check_tools, ("token",)),
    Check("rate limit", check_rate_limit, ("procore",)),
    Check("clock", check_clock, ("procore",)),
    Check("webhook", check_webhook, ("token",)),
    Check("disk", check_disk, ("configuration",)),
    Check("data dir", check_data_dir, ("configuration",)),
)


def run_checks(ctx: Context, checks: Sequence[Check] = CHECKS) -> list[CheckResult]:
    results: list[CheckResult] = []
    unusable: set[str] = set()  # failed or skipped: what needs them is skipped too
    for check in checks:
        blocked = [name for name in check.needs if name in unusable]
        result = skipped(check.name, blocked) if blocked else _run_one(check, ctx)
        if blocked or result.status is Status.FAIL:
            unusable.add(check.name)
        results.append(result)
    return results


def skipped(name: str, blocked: Sequence[str]) -> CheckResult:
    return CheckResult(name, Status.WARN, "skipped: needs " + " and ".join(NEEDS.get(n, n) for n in blocked),
                       f"fix the {' and '.join(blocked)} check{'s' if len(blocked) > 1 else ''} above first")


def _run_one(check: Check, ctx: Context) -> CheckResult:
    try:
        return check.run(ctx)
    except Exception as exc:  # the loop boundary: one line, never a traceback
        log.debug("doctor check %s failed", check.name, exc_info=True)
        return CheckResult(check.name, Status.FAIL, f"the check itself failed: {type(exc).__name__}:"
                           f" {first_line(exc)}", "rerun with --verbose for the details")
