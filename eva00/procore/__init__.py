"""The Procore API client: every process that talks to Procore goes through one ProcoreClient.

- tokens / auth: both OAuth grants, the PostgreSQL token store, the shared rotation-safe renewal
- limiter: the token bucket + sliding window + budgets shared by every process through Redis
- http: the one send wrapper (limiter, headers, 401/429/503/5xx/connection handling, metrics)
- circuit, metrics, errors, keys: its collaborators and its Redis key names
- endpoints, paging: what the fetchers ask for; transfer: the one download path (redirects,
  the token only to Procore's hosts, resume, hashing)

Imports only the base modules (config, keys, errors, messages, kinds) and eva00.runtime; never
stages, replica, fullsync, ops, webhooks, pdf_import, cli, proof or the simulator. Where the
client needs the rest of the system (alerts are rows in PostgreSQL, bytes go to a file store), it
takes them as arguments.
"""

from __future__ import annotations

import redis
import requests
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.procore.auth import Authenticator
from eva00.procore.circuit import CircuitBreaker, PgAlerts
from eva00.procore.http import ProcoreClient
from eva00.procore.keys import DEFAULT_KEYS, ProcoreKeys
from eva00.procore.limiter import BudgetClass, LimiterConfig, RateLimiter
from eva00.procore.metrics import Metrics

__all__ = ["BudgetClass", "ProcoreClient", "build_authenticator", "build_client"]


def build_authenticator(settings: Settings, client: redis.Redis, pool: ConnectionPool, *,
                        keys: ProcoreKeys = DEFAULT_KEYS, session: requests.Session | None = None,
                        ) -> Authenticator:
    from eva00.procore.tokens import TokenEndpoint

    return Authenticator(settings, client, pool, keys=keys, endpoint=TokenEndpoint(settings, session=session))


def build_client(settings: Settings, client: redis.Redis, pool: ConnectionPool, *,
                 keys: ProcoreKeys = DEFAULT_KEYS, limiter_config: LimiterConfig | None = None,
                 session: requests.Session | None = None, circuit_threshold: int = 5,
                 circuit_cooldown_s: float = 10.0) -> ProcoreClient:
    """The client of one process, wired to the shared limiter, token and circuit in Redis."""
    session = session or requests.Session()
    auth = build_authenticator(settings, client, pool, keys=keys, session=session)
    limiter = RateLimiter(client, limiter_config or LimiterConfig.from_settings(settings), keys=keys)
    circuit = CircuitBreaker(client, PgAlerts(pool), keys=keys, threshold=circuit_threshold,
                             cooldown_s=circuit_cooldown_s)
    return ProcoreClient(settings, auth, limiter, circuit=circuit, metrics=Metrics(client, keys),
                         session=session)
