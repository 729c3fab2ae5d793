"""Benchmark: three processes hammer the simulator through the shared limiter for a scaled
window (100 per 6 s on the server, 95 per 6 s and 15/s in the limiter), while a fourth sends one
webhook-class request every half second. Figures: achieved / allowed rate, the simulator's count
of refused requests (must be 0), and the p95 token wait of the webhook class under saturation.

Workers are separate OS processes (`python -m eva00.proof.bench.procore_limiter --worker JSON`), the
same entry the multi-process limiter test uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.procore import build_client
from eva00.procore.keys import ProcoreKeys
from eva00.procore.limiter import BudgetClass, LimiterConfig
from eva00.runtime import db

SETTINGS_FIELDS = ("procore_api_base", "procore_login_base", "procore_client_id", "procore_client_secret",
                   "procore_company_id", "database_url", "redis_url", "http_timeout_s", "allow_loopback_urls")
PATH = "/rest/v1.0/me"


def limiter_to_json(config: LimiterConfig) -> dict[str, Any]:
    data = asdict(config)
    data["budgets"] = {k.value: v for k, v in config.budgets.items()}
    return data


def limiter_from_json(data: dict[str, Any]) -> LimiterConfig:
    return LimiterConfig(**{**data, "budgets": {BudgetClass(k): v for k, v in data["budgets"].items()}})


def worker_command(settings: Settings, config: LimiterConfig, *, prefix: str, budget: str, duration_s: float,
                   interval_s: float) -> list[str]:
    spec = {"settings": {f: getattr(settings, f) for f in SETTINGS_FIELDS},
            "limiter": limiter_to_json(config), "prefix": prefix, "budget": budget,
            "duration_s": duration_s, "interval_s": interval_s}
    return [sys.executable, "-m", "eva00.proof.bench.procore_limiter", "--worker", json.dumps(spec)]


def worker(spec: dict[str, Any]) -> None:
    """Send requests of one class until the duration ends; push each token wait (ms) to Redis."""
    settings = Settings(**spec["settings"])
    client = redis.Redis.from_url(settings.redis_url)
    keys = ProcoreKeys(spec["prefix"])
    with ConnectionPool(settings.database_url, min_size=1, max_size=1, open=True) as pool:
        procore = build_client(settings, client, pool, keys=keys,
                               limiter_config=limiter_from_json(spec["limiter"]))
        client.rpush(f"{spec['prefix']}:bench:ready", 1)
        while client.get(f"{spec['prefix']}:bench:go") is None:
            time.sleep(0.005)
        deadline = time.monotonic() + spec["duration_s"]
        while time.monotonic() < deadline:
            procore.request("GET", PATH, budget=spec["budget"]).close()
            grant = procore.last_grant
            waited_ms = (grant.waited_s if grant else 0.0) * 1000
            client.rpush(f"{spec['prefix']}:bench:waits:{spec['budget']}", waited_ms)
            if spec["interval_s"]:
                time.sleep(spec["interval_s"])


def run_workers(settings: Settings, config: LimiterConfig, client: redis.Redis, *, prefix: str,
                hammers: int, duration_s: float, probe_interval_s: float) -> dict[str, Any]:
    """Start ``hammers`` scheduled workers and one webhook prober; returns what they measured."""
    commands = [worker_command(settings, config, prefix=prefix, budget="scheduled", duration_s=duration_s,
                               interval_s=0) for _ in range(hammers)]
    commands.append(worker_command(settings, config, prefix=prefix, budget="webhook",
                                   duration_s=duration_s, interval_s=probe_interval_s))
    processes = [subprocess.Popen(c) for c in commands]
    try:
        deadline = time.monotonic() + 60
        while client.llen(f"{prefix}:bench:ready") < len(processes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError("benchmark workers did not start")
            time.sleep(0.02)
        client.set(f"{prefix}:bench:go", 1)
        started = time.monotonic()
        for process in processes:
            if process.wait(duration_s + 60) != 0:
                raise RuntimeError(f"a benchmark worker exited with {process.returncode}")
        elapsed = time.monotonic() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    waits = {b: [float(x) for x in client.lrange(f"{prefix}:bench:waits:{b}", 0, -1)]
             for b in ("scheduled", "webhook")}
    return {"elapsed_s": elapsed, "waits_ms": waits, "requests": sum(len(w) for w in waits.values())}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else float("inf")


def run(tmp_dir: Path) -> list[dict[str, Any]]:
    from eva00.ops.localstack import start_postgres, start_redis
    from eva00.simulator.testing import running_simulator

    config = LimiterConfig(burst=10, refill_per_s=15.0, window_max=95, window_s=6.0, budget_window_s=6.0,
                           budgets={BudgetClass.SCHEDULED: 60, BudgetClass.WEBHOOK: 15,
                                    BudgetClass.ON_DEMAND: 15}, reserve_slots=5)
    duration_s = 18.0
    with ExitStack() as stack:
        redis_spec, redis_server = start_redis(tmp_dir / "stack")
        stack.callback(redis_server.stop)
        pg_spec, pg_server = start_postgres(tmp_dir / "stack")
        stack.callback(pg_server.stop)
        db.apply_schema(pg_spec.owner_url, app_role=pg_spec.user)
        sim = stack.enter_context(running_simulator(tmp_dir / "sim", projects=2, items=50, rate_limit="100/6",
                                                    spike="off"))
        settings = Settings(procore_api_base=sim.api_base, procore_login_base=sim.login_base,
                            allow_loopback_urls=True,
                            procore_client_id=sim.client_id, procore_client_secret=sim.client_secret,
                            procore_company_id=sim.company_id, database_url=pg_spec.url,
                            redis_url=redis_spec.url, http_timeout_s=10.0)
        client = redis.Redis.from_url(redis_spec.url)
        measured = run_workers(settings, config, client, prefix="bench", hammers=3, duration_s=duration_s,
                               probe_interval_s=0.5)
        stats = sim.stats()
    achieved = stats["api_requests"] / measured["elapsed_s"]
    # the limiter allows its burst once, then its sustained rate
    allowed = (config.burst + config.allowed_rate_per_s * measured["elapsed_s"]) / measured["elapsed_s"]
    webhook_p95_ms = p95(measured["waits_ms"]["webhook"])
    return [
        {"name": "limiter: achieved / allowed rate (3 processes, 100 per 6 s)", "value": achieved / allowed,
         "unit": "ratio", "goal": ">= 0.9", "met": achieved / allowed >= 0.9},
        {"name": "limiter: requests refused by the server (429)", "value": stats["violations"],
         "unit": "requests", "goal": "== 0", "met": stats["violations"] == 0},
        {"name": "limiter: p95 token wait of the webhook class under saturation", "value": webhook_p95_ms,
         "unit": "ms", "goal": "<= 2000", "met": webhook_p95_ms <= 2000},
    ]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        worker(json.loads(argv[1]))
        return 0
    import tempfile

    with tempfile.TemporaryDirectory(prefix="eva00-bench-limiter-") as tmp:
        Path(tmp).chmod(0o755)
        for figure in run(Path(tmp)):
            print(f"{figure['name']}: {figure['value']:.4g} {figure['unit']} (goal {figure['goal']}, "
                  f"{'met' if figure['met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
