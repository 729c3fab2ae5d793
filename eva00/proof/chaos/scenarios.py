"""The seven chaos scenarios of issue 11. Each runs on its own fresh stack during a full sync with
churn and webhooks on, does its damage, then waits for the system to go quiet and returns the
checker's report: a pass is every figure 0 (and the scenario's own assertions, in ``problems``).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import requests

from eva00.fullsync.run import Run
from eva00.proof.chaos.stack import SERVICES, WEBHOOK_SECRET, ChaosStack, Scale, running_stack
from eva00.proof.checker.run import CheckReport

API_FAULTS = ("5xx", "503", "reset", "truncate", "malformed_json", "wrong_total", "slow")


@dataclass
class Outcome:
    number: int
    name: str
    report: CheckReport | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name, "passed": self.passed,
                "seconds": round(self.seconds, 1), "problems": self.problems, "notes": self.notes,
                "checker": self.report.to_dict() if self.report else None}


def _finish(stack: ChaosStack, run: Run, outcome: Outcome, *, allowed_errors: tuple[str, ...] = (),
            expected_dead_letters: Callable[[dict[str, Any]], bool] | None = None) -> None:
    """Wait for the run to end, then for quiet; record the checker's report and the run's end."""
    started = time.monotonic()
    deadline = started + stack.scale.quiet_timeout_s
    current: Run | None = run
    while time.monotonic() < deadline:
        try:
            current = stack.full_sync(run)
        except psycopg.Error:
            current = None  # PostgreSQL still restarting
        if current is not None and current.status != "running":
            break
        time.sleep(1.0)
    if current is None or current.status == "running":
        outcome.problems.append(f"full sync {run.run_id} did not finish in"
                                f" {stack.scale.quiet_timeout_s:.0f} s")
    elif current.status != "complete" and not (allowed_errors and all(
            any(allowed in error for allowed in allowed_errors)
            for error in (current.reason or "").split("; "))):
        outcome.problems.append(f"full sync {run.run_id} {current.status}: {current.reason}")
    elif current.status != "complete":
        outcome.notes.append(f"full sync ended {current.status} as expected: {current.reason}")
    ended = time.monotonic()
    outcome.report = stack.quiet_check(expected_dead_letters=expected_dead_letters)
    outcome.notes.append(f"waited {ended - started:.0f} s for the full sync to end,"
                         f" {time.monotonic() - ended:.0f} s for quiet and a clean check")


def _begin(stack: ChaosStack) -> Run:
    stack.churn(stack.scale.churn_per_s)
    return stack.start_full_sync()


# --- 1. kill -9 of every stage type ---

def kill_stages(stack: ChaosStack, outcome: Outcome, rng: random.Random) -> None:
    run = _begin(stack)
    types = stack.stage_types()
    plan = [t for t in types for _ in range(stack.scale.kills_per_stage)]
    rng.shuffle(plan)
    kills: dict[str, int] = dict.fromkeys(types, 0)
    phases_seen: set[int] = set()
    for stage_type in plan:
        instance = rng.choice(stack.instances(stage_type))
        deadline = time.monotonic() + 30
        while not stack.kill9(instance) and time.monotonic() < deadline:
            time.sleep(0.2)  # still restarting from the previous kill
        kills[stage_type] += 1
        phases_seen.add(_phase(stack, run))
        time.sleep(rng.uniform(0.1, 0.8 if stack.scale.name == "ci" else 1.2))
    outcome.notes.append(f"kills per stage type: {kills}; during phases {sorted(phases_seen)}")
    short = {t: n for t, n in kills.items() if n < stack.scale.kills_per_stage}
    if short:
        outcome.problems.append(f"fewer kills than planned: {short}")
    stack.wait_running()
    _finish(stack, run, outcome)


def _phase(stack: ChaosStack, run: Run) -> int:
    try:
        with stack.pool.connection() as conn:
            row = conn.execute("SELECT coalesce(max(phase), 0) FROM fullsync_jobs WHERE run_id = %s",
                               (run.run_id,)).fetchone()
        return int(row[0]) if row else 0
    except psycopg.Error:
        return -1


# --- 2. Redis killed and restarted (AOF), then wiped ---

def redis_outages(stack: ChaosStack, outcome: Outcome, rng: random.Random) -> None:
    run = _begin(stack)
    stack.wait_for_phase(run, 2)
    before = int(stack.redis.dbsize())
    stack.kill9("redis")
    stack.wait_running()
    outcome.notes.append(f"redis killed with {before} keys; back with {_dbsize(stack)} (AOF)")
    stack.wait_for_phase(run, 3)
    stack.redis.flushall()
    outcome.notes.append("redis wiped (FLUSHALL) during phase 3")
    _finish(stack, run, outcome)


def _dbsize(stack: ChaosStack) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            return int(stack.redis.dbsize())
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


# --- 3. PostgreSQL killed and restarted ---

def postgres_outage(stack: ChaosStack, outcome: Outcome, rng: random.Random) -> None:
    run = _begin(stack)
    stack.wait_for_phase(run, 2)
    stack.kill9("postgres")
    stack.wait_running()
    outcome.notes.append("postgres killed -9 during phase 2 and restarted by supervisord")
    stack.wait_for_phase(run, 4)
    stack.kill9("postgres")
    stack.wait_running()
    outcome.notes.append("and again during phase 4")
    _finish(stack, run, outcome)


# --- 4. API faults, one after another, then a 403 on one project ---

def api_faults(stack: ChaosStack, outcome: Outcome, rng: random.Random) -> None:
    run = _begin(stack)
    sim = stack.simulator
    for mode in API_FAULTS:
        spec: dict[str, Any] = {"delay_s": 2.0} if mode == "slow" else {}
        sim.set_faults(mode, ratio=0.3, paths="/rest/", **spec)
        time.sleep(stack.scale.fault_s)
        sim.clear_faults()
    project = min(p["id"] for p in sim.truth(kinds=["project"])["records"] if not p["is_deleted"])
    sim.forbid_project(project)
    time.sleep(stack.scale.fault_s)
    with stack.pool.connection() as conn:
        deleted = conn.execute("SELECT count(*) FROM replica_records WHERE project_id = %s AND is_deleted",
                               (project,)).fetchone()
    sim.allow_project(project)
    truth_deleted = sum(1 for r in sim.truth(project_id=project)["records"] if r["is_deleted"])
    if deleted and deleted[0] > truth_deleted:
        outcome.problems.append(f"project {project}: {deleted[0]} soft deletes while it answered 403")
    outcome.notes.append(f"faults {', '.join(API_FAULTS)} at 30% for {stack.scale.fault_s:g} s each;"
                         f" project {project} forbidden for {stack.scale.fault_s:g} s")
    # Every error of an incomplete run must be one the faults explain: the forbidden project's
    # refusals, or a listing whose Totals kept lying longer than the run's spaced retries; the
    # re-run below must then complete it.
    _finish(stack, run, outcome, allowed_errors=(f"in project {project} refused",
                                                 "listing incomplete (counts kept disagreeing)"))
    _reopen_if_incomplete(stack, run, outcome)


def _reopen_if_incomplete(stack: ChaosStack, run: Run, outcome: Outcome) -> None:
    """The operator's answer to an incomplete run: run the command again; it retries the refusals."""
    current = stack.full_sync(run)
    if current is None or current.status != "incomplete":
        return
    started = time.monotonic()
    done = stack.eva00("full-sync", "--wait", "--no-files", "--interval-s", "0.5",
                        timeout_s=stack.scale.quiet_timeout_s)
    if done.returncode != 0:
        outcome.problems.append(f"re-running the incomplete full sync exited {done.returncode}:"
                                f" {done.stdout[-500:]}")
    else:
        outcome.notes.append("re-running `eva00 full-sync` completed the run in"
                             f" {time.monotonic() - started:.0f} s")


# --- 5. webhook abuse ---

def webhook_abuse(stack: ChaosStack, outcome: Outcome, rng: random.Random) -> None:
    run = _begin(stack)
    url = f"http://127.0.0.1:{stack.settings.webhook_port}/webhooks/procore"
    stack.wait_for_phase(run, 3)  # phase 2's RFIs are in: events about real records
    with stack.pool.connection() as conn:
        rfis = conn.execute("SELECT procore_id, project_id FROM rfis ORDER BY procore_id LIMIT 50").fetchall()
    good = {"Authorization": WEBHOOK_SECRET, "Content-Type": "application/json"}

    def event(rfi: tuple[int, int], ulid: str | None = None) -> bytes:
        return orjson.dumps({"id": rng.randrange(1, 10**9), "ulid": ulid or uuid.uuid4().hex[:26].upper(),
                             "timestamp": "2026-11-28T10:00:00Z", "metadata": {}, "user_id": 5,
                             "company_id": stack.simulator.company_id, "project_id": rfi[1],
                             "api_version": "v2.0", "event_type": "update", "resource_name": "RFIs",
                             "resource_id": rfi[0]})

    expectations: list[tuple[str, bytes, dict[str, str], set[int]]] = []
    one = event(rfis[0], "01CHAOSREPLAY0000000000000")
    expectations += [("duplicate", one, good, {200, 202, 204})] * 5  # duplicates and replays
    expectations += [("bad credentials", event(rfis[1]), {**good, "Authorization": "wrong"}, {401}),
                     ("no credentials", event(rfis[1]), {"Content-Type": "application/json"}, {401}),
                     ("oversize", b"{" + b" " * 200_000 + b"}", good, {413}),
                     # Authenticated but unreadable: kept raw and answered 200 (Procore pauses a
                     # hook that keeps failing).
                     ("malformed JSON", b'{"resource_name": "RFIs", ', good, {200}),
                     ("not an event", b'{"hello": "world"}', good, {200}),
                     ("NUL", b'{"hello": "\\u0000"}', good, {200})]
    expectations += [("storm", event(rng.choice(rfis)), good, {200, 202, 204})
                     for _ in range(100 if stack.scale.name == "ci" else 2000)]
    wrong: list[str] = []
    session = requests.Session()
    for name, body, headers, allowed in expectations:
        try:
            status = session.post(url, data=body, headers=headers, timeout=10).status_code
        except requests.RequestException as exc:
            status = 0
            if name != "oversize":  # the listener may cut an oversize body off mid-send
                wrong.append(f"{name}: {exc}")
                continue
            status = 413
        if status not in allowed:
            wrong.append(f"{name}: {status}, expected {sorted(allowed)}")
    outcome.notes.append(f"{len(expectations)} deliveries sent to the listener")
    if wrong:
        outcome.problems.append(f"listener answers: {wrong[:5]} ({len(wrong)} wrong)")
    _finish(stack, run, outcome)


# --- 6. the host's clock against the server's ---

CLOCK_OFFSET_S = -5400.0  # the server 90 minutes behind the host: host-clock cursors skip updates


def clock_skew(stack: ChaosStack, outcome: Outcome, rng: random.Random) -> None:
    offset_s = float(stack.simulator.configure()["clock_offset_s"])
    if offset_s != CLOCK_OFFSET_S:
        outcome.problems.append(f"the simulator's clock offset is {offset_s}, not {CLOCK_OFFSET_S}")
    run = _begin(stack)
    _finish(stack, run, outcome)
    with stack.pool.connection() as conn:
        row = conn.execute("SELECT max(extract(epoch FROM cursor_at)) FROM sync_cursors").fetchone()
    server_now = time.time() + offset_s
    if row and row[0] is not None and float(row[0]) > server_now:
        outcome.problems.append(f"a cursor is {float(row[0]) - server_now:.0f} s past the server's clock")
    outcome.notes.append(f"server clock {offset_s:+.0f} s from the host's")


# --- 7. supervisord: stop all under load, start again; a crash-looping stage ---

def supervisor_stops(stack: ChaosStack, outcome: Outcome, rng: random.Random) -> None:
    run = _begin(stack)
    stack.wait_for_phase(run, 2)
    rpc = stack.rpc()
    # Every program but the services (the simulator holds the ground truth in memory), all at once
    # as `supervisorctl stop all` does it; each stage finishes its message in hand on SIGTERM.
    stages = [n if n == "supervisor_listener" else f"eva00:{n}" for n in stack.programs()
              if n not in SERVICES]
    started = time.monotonic()
    for name in stages:
        rpc.supervisor.stopProcess(name, False)
    stack.wait_states(stages, ("STOPPED", "EXITED"), timeout_s=400.0)
    stop_s = time.monotonic() - started
    for name in stages:
        rpc.supervisor.startProcess(name, False)
    stack.wait_running()
    outcome.notes.append(f"stopped {len(stages)} programs under load in {stop_s:.1f} s, started them again")
    # A crash loop: the differ killed as soon as it starts, until supervisord gives up (FATAL).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and stack.programs()["differ"]["statename"] != "FATAL":
        stack.kill9("differ", states=("STARTING", "RUNNING"))
        time.sleep(0.1)
    state = stack.programs()["differ"]["statename"]
    alerted = _alert_open(stack, "process-fatal:eva00:differ")
    outcome.notes.append(f"differ crash-looped to {state}; alert open: {alerted}")
    if state != "FATAL" or not alerted:
        outcome.problems.append(f"crash loop: differ ended {state}, FATAL alert open: {alerted}")
    if state in ("FATAL", "STOPPED", "EXITED"):
        rpc.supervisor.startProcess("eva00:differ", True)
    stack.wait_running()
    time.sleep(2.0)
    if _alert_open(stack, "process-fatal:eva00:differ"):
        outcome.problems.append("the FATAL alert stayed open after the differ ran again")
    _finish(stack, run, outcome)


def _alert_open(stack: ChaosStack, key: str) -> bool:
    deadline = time.monotonic() + 10
    while True:
        with stack.pool.connection() as conn:
            row = conn.execute("SELECT status FROM alerts WHERE alert_key = %s"
                               " ORDER BY opened_at DESC LIMIT 1", (key,)).fetchone()
        if row is not None and row[0] != "resolved":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


Body = Callable[[ChaosStack, Outcome, random.Random], None]
SCENARIOS: dict[int, tuple[str, Body, dict[str, str]]] = {
    1: ("kill -9 of every stage type during a full sync", kill_stages, {}),
    2: ("Redis killed and restarted (AOF), then wiped", redis_outages, {}),
    3: ("PostgreSQL killed and restarted", postgres_outage, {}),
    4: ("API faults, then a 403 on one project", api_faults, {}),
    5: ("webhook abuse", webhook_abuse, {}),
    # The simulator starts with its clock off: a server's clock does not jump, the host's is off.
    6: ("the server's clock 90 minutes behind the host's", clock_skew,
        {"EVA00_SIM_CLOCK_OFFSET_S": str(CLOCK_OFFSET_S)}),
    7: ("supervisord: stop all under load, a crash-looping stage", supervisor_stops, {}),
}


def run_scenario(number: int, scale: Scale, seed: int = 0) -> Outcome:
    name, body, extra_env = SCENARIOS[number]
    outcome = Outcome(number, name)
    started = time.monotonic()
    try:
        with running_stack(scale, extra_env) as stack:
            body(stack, outcome, random.Random(seed + number))
    except Exception as exc:  # the scenario itself broke: a failure with its reason, not a crash
        outcome.problems.append(f"{type(exc).__name__}: {exc}")
    outcome.seconds = time.monotonic() - started
    return outcome
