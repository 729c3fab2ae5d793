"""The replica checker: once the system is quiet, PostgreSQL, the file store and Redis against the
simulator's ground truth, as integer figures that must all be 0 for a pass.

Every figure is computed set-wise (one query, one Redis scan or one pass over the ledger), so the
standard data set and chaos-sized runs are checked in seconds. The PostgreSQL figures are read in
one REPEATABLE READ READ ONLY transaction, so they describe a single snapshot. Record keys follow
the simulator: (kind, Procore id, project id), the project id being 0 for company-level kinds and
for projects themselves (the replica may store a project's own id or NULL there).

    report = check(settings, sim, redis_client)
    print(report.table())
    assert report.passed, report.table()
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
import redis
import requests

from eva00.config import Settings
from eva00.proof.checker.files import file_figures
from eva00.proof.checker.ratelimit import rate_limit_figure
from eva00.proof.checker.streams import dead_letter_figure, pending_figure
from eva00.simulator.testing import SimHandle
from eva00.simulator.tools import TOOL_KINDS

# Every figure in the order the report lists it; each counts things that must not exist.
FIGURES: tuple[str, ...] = (
    "missing_records",  # alive in the simulator, no row in the replica
    "unexpected_records",  # alive in the replica, unknown to the simulator
    "stale_records",  # alive in both, payload hashes differ
    "duplicate_rows",  # extra rows for one record key, over every entity table
    "missing_versions",  # a row's current payload hash has no record_versions row
    "false_soft_deletes",  # deleted in the replica, alive in the simulator
    "missed_soft_deletes",  # deleted in the simulator, alive in the replica
    "hard_deletes",  # a record with history (record_versions) and no row any more
    "file_sha_mismatches",  # stored bytes that do not hash to their sha256, or are missing
    "temp_files",  # stray files in the content-addressed tree; temps of finished downloads
    "file_records_not_downloaded",  # record_files still pending or failed (expired-with-reason excluded)
    "pending_stream_entries",  # pending + never delivered, every group of every eva00 stream
    "unexpected_dead_letters",  # dead letters (table and stream, once each) not declared expected
    "rate_limit_violations",  # requests beyond the server's limit, from its stats and its ledger
)
MAX_EXAMPLES = 10

Finding = tuple[int, list[str]]
RecordKey = tuple[str, int, int]


class SimulatorView(Protocol):
    """What the checker reads from the simulator (eva00.simulator.testing.SimHandle has it)."""

    def truth(self, kinds: list[str] | None = None, project_id: int | None = None) -> dict[str, Any]: ...

    def ledger(self, since_seq: int = 0) -> list[dict[str, Any]]: ...

    def stats(self) -> dict[str, Any]: ...

    def tools_off(self) -> dict[str, list[int]]: ...


@dataclass(frozen=True)
class CheckReport:
    figures: dict[str, int]
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(count == 0 for count in self.figures.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, count in self.figures.items() if count]

    def table(self) -> str:
        lines = ["| figure | count | examples |", "|---|---:|---|"]
        for name, count in self.figures.items():
            shown = "; ".join(self.examples.get(name, [])[:3]).replace("|", "/")
            lines.append(f"| {name} | {count} | {shown} |")
        lines.append(f"\n{'PASS' if self.passed else 'FAIL: ' + ', '.join(self.failing)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "figures": dict(self.figures),
                "examples": {name: list(found) for name, found in self.examples.items() if found}}


def simulator_at(api_base: str, *, client_id: str = "", client_secret: str = "") -> SimHandle:
    """A control handle for a simulator someone else started (supervisord's, on settings.sim_port)."""
    answer = requests.get(api_base.rstrip("/") + "/_sim/health", timeout=30)
    answer.raise_for_status()
    health = answer.json()
    return SimHandle(api_base=api_base.rstrip("/"), login_base=api_base.rstrip("/"),
                     storage_base=str(health["storage_base"]), company_id=int(health["company_id"]),
                     client_id=client_id, client_secret=client_secret, pid=0)


def check(settings: Settings, sim: SimulatorView, redis_client: redis.Redis, *,
          expected_dead_letters: Callable[[dict[str, Any]], bool] | None = None,
          expected_dead_letter_count: int = 0,
          rate_limit: tuple[int, float] | None = None) -> CheckReport:
    """Every figure of FIGURES. ``expected_dead_letters`` marks dead letters a test caused on
    purpose (it sees each as a dict: stream, group_name, message_id, fields, error, deliveries,
    origin); ``expected_dead_letter_count`` forgives that many more. ``rate_limit`` (requests,
    window_s) is the window recomputed from the ledger; by default the simulator's own
    ``rate`` window."""
    found: dict[str, Finding] = {}
    truth = sim.truth()
    hidden = hidden_by_tools(sim.tools_off())
    with _snapshot(settings.effective_database_url) as conn:
        found.update(record_figures(conn, [r for r in truth["records"]
                                           if (r["kind"], r["project_id"]) not in hidden]))
        found.update(file_figures(conn, settings.data_dir))
        found["unexpected_dead_letters"] = dead_letter_figure(
            conn, redis_client, expected_dead_letters, expected_dead_letter_count)
    found["pending_stream_entries"] = pending_figure(redis_client)
    found["rate_limit_violations"] = rate_limit_figure(sim.stats(), sim.ledger(), rate_limit)
    return CheckReport({name: found[name][0] for name in FIGURES},
                       {name: found[name][1][:MAX_EXAMPLES] for name in FIGURES if found[name][0]})


@contextlib.contextmanager
def _snapshot(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            yield conn


# --- records ---

def hidden_by_tools(tools_off: dict[str, list[int]]) -> set[tuple[str, int]]:
    """(kind, project) pairs of the tools switched off in a project: Procore shows no record of
    them, so the replica cannot hold them (the sync lists them as unavailable instead)."""
    return {(kind, project) for tool, projects in tools_off.items() for kind in TOOL_KINDS[tool]
            for project in projects}


def record_figures(conn: psycopg.Connection, truth_records: list[dict[str, Any]]) -> dict[str, Finding]:
    """The figures that compare rows with the simulator's records, plus the history checks."""
    truth = {_truth_key(r): r for r in truth_records}
    replica = _replica(conn)
    found = _compare(truth, replica)
    found["duplicate_rows"] = _duplicates(conn)
    found["missing_versions"] = _missing_versions(conn)
    found["hard_deletes"] = _hard_deletes(conn)
    return found


def _truth_key(record: dict[str, Any]) -> RecordKey:
    return _key(str(record["kind"]), int(record["id"]), record["project_id"])


def _key(kind: str, procore_id: int, project_id: int | None) -> RecordKey:
    return kind, procore_id, 0 if kind == "project" else (project_id or 0)


def _replica(conn: psycopg.Connection) -> dict[RecordKey, tuple[str, bool]]:
    rows = conn.execute("SELECT kind, procore_id, project_id, payload_hash, is_deleted FROM replica_records")
    # A duplicated key keeps one of its rows here; duplicate_rows counts the others.
    return {_key(kind, pid, project): (digest, deleted) for kind, pid, project, digest, deleted in rows}


def _compare(truth: dict[RecordKey, dict[str, Any]],
             replica: dict[RecordKey, tuple[str, bool]]) -> dict[str, Finding]:
    buckets: dict[str, list[str]] = {name: [] for name in (
        "missing_records", "unexpected_records", "stale_records", "false_soft_deletes",
        "missed_soft_deletes")}
    for key, record in truth.items():
        held = replica.get(key)
        if held is None:
            if not record["is_deleted"]:
                buckets["missing_records"].append(_show(key))
            continue
        digest, deleted = held
        if record["is_deleted"] and not deleted:
            buckets["missed_soft_deletes"].append(f"{_show(key)} deleted at {record.get('deleted_at')}")
        elif deleted and not record["is_deleted"]:
            buckets["false_soft_deletes"].append(_show(key))
        elif not deleted and digest not in _hashes(record):
            buckets["stale_records"].append(f"{_show(key)}: replica {digest[:12]}, "
                                            f"simulator {record['payload_hash'][:12]}")
    for key, (_digest, deleted) in replica.items():
        if not deleted and key not in truth:
            buckets["unexpected_records"].append(_show(key))
    return {name: (len(items), sorted(items)[:MAX_EXAMPLES]) for name, items in buckets.items()}


def _hashes(record: dict[str, Any]) -> set[str]:
    # Schedule tasks may be read from the v2 API, whose payload hashes differently.
    return {h for h in (record.get("payload_hash"), record.get("payload_hash_v2")) if h}


def _show(key: RecordKey) -> str:
    kind, procore_id, project = key
    return f"{kind} {procore_id}" + (f" in project {project}" if project else "")


def _counted(rows: list[tuple[Any, ...]]) -> Finding:
    """Rows of a query ending in ``count(*) OVER ()`` (the total before LIMIT), as a Finding."""
    if not rows:
        return 0, []
    return int(rows[0][-1]), [" ".join(str(v) for v in row[:-1]) for row in rows]


def _duplicates(conn: psycopg.Connection) -> Finding:
    # The unique index of each table forbids exact duplicates; a project stored under its own id
    # and under NULL, or one key in two tables, would still be two rows for one record.
    rows = conn.execute(
        "SELECT kind, procore_id, key_project, count(*),"
        " string_agg(entity_type || '.project_id=' || coalesce(project_id::text, 'null'), ', '"
        "            ORDER BY entity_type, project_id NULLS FIRST),"
        " sum(count(*) - 1) OVER () FROM ("
        "  SELECT entity_type, kind, procore_id, project_id,"
        "         CASE WHEN kind = 'project' THEN 0 ELSE coalesce(project_id, 0) END AS key_project"
        "    FROM replica_records) r"
        " GROUP BY kind, procore_id, key_project HAVING count(*) > 1"
        " ORDER BY kind, procore_id LIMIT %s", (MAX_EXAMPLES,)).fetchall()
    if not rows:
        return 0, []
    return int(rows[0][-1]), [f"{_show((kind, pid, project))}: {count} rows ({held_as})"
                              for kind, pid, project, count, held_as, _total in rows]


def _missing_versions(conn: psycopg.Connection) -> Finding:
    rows = conn.execute(
        "SELECT r.kind, r.procore_id, 'project ' || coalesce(r.project_id, 0), 'hash ' || r.payload_hash,"
        " count(*) OVER () FROM replica_records r"
        " WHERE NOT EXISTS (SELECT 1 FROM record_versions v WHERE v.kind = r.kind"
        "   AND v.procore_id = r.procore_id AND coalesce(v.project_id, 0) = coalesce(r.project_id, 0)"
        "   AND v.payload_hash = r.payload_hash)"
        " ORDER BY r.kind, r.procore_id LIMIT %s", (MAX_EXAMPLES,)).fetchall()
    return _counted(rows)


def _hard_deletes(conn: psycopg.Connection) -> Finding:
    rows = conn.execute(
        "SELECT v.kind, v.procore_id, 'project ' || v.project_key, 'gone from ' || v.entity_type,"
        " count(*) OVER () FROM (SELECT DISTINCT entity_type, kind, procore_id,"
        "   coalesce(project_id, 0) AS project_key FROM record_versions) v"
        " WHERE NOT EXISTS (SELECT 1 FROM replica_records r WHERE r.entity_type = v.entity_type"
        "   AND r.kind = v.kind AND r.procore_id = v.procore_id"
        "   AND coalesce(r.project_id, 0) = v.project_key)"
        " ORDER BY v.kind, v.procore_id LIMIT %s", (MAX_EXAMPLES,)).fetchall()
    return _counted(rows)
