"""The access token every process uses, and the one process at a time allowed to renew it.

Readers take the access token from Redis (one GET per request). Renewal happens under a Redis
lease: the holder re-reads PostgreSQL (a peer may have renewed already), calls the token endpoint,
commits the new generation, and only then publishes the access token to Redis. Refresh tokens
rotate and die on use, so a second process refreshing with the same token would kill the chain:
the lease and the generation check make that impossible while the lease holds.

A rejected refresh token (invalid_grant) forgets the stored tokens, raises a critical alert with
the re-authorisation steps and halts every process (a Redis key, and durably the missing refresh
token in PostgreSQL) until `eva00 auth login` installs new tokens: no retry storm.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import orjson
import redis
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.procore.errors import AuthHalted, AuthRejected, AuthUnavailable
from eva00.procore.keys import DEFAULT_KEYS, ProcoreKeys, as_text
from eva00.procore.tokens import (
    CLIENT_CREDENTIALS,
    StoredTokens,
    TokenEndpoint,
    TokenSet,
    TokenStore,
)
from eva00.runtime import alerts

log = logging.getLogger(__name__)

ALERT_REAUTHORIZE = "procore-auth-reauthorize"
ALERT_CREDENTIALS = "procore-auth-credentials"
REAUTHORIZE_STEPS = (
    "Procore rejected the stored refresh token, so every EVA-00 process has stopped calling Procore."
    " To resume: on the sync host run `eva00 auth login`, open the printed URL, sign in to Procore"
    " as the integration user and approve; the code is caught by the 127.0.0.1 callback or pasted"
    " when asked. Sync resumes by itself once the new tokens are stored. For unattended sync prefer"
    " a service account (PROCORE_AUTH_MODE=client_credentials).")
CREDENTIALS_STEPS = (
    "Procore rejected the client id or secret, so EVA-00 has stopped calling Procore. Check"
    " PROCORE_CLIENT_ID and PROCORE_CLIENT_SECRET (a rotated secret?) and restart the stack.")

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: float
    generation: int


class Authenticator:
    def __init__(self, settings: Settings, client: redis.Redis, pool: ConnectionPool, *,
                 endpoint: TokenEndpoint | None = None, store: TokenStore | None = None,
                 keys: ProcoreKeys = DEFAULT_KEYS, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 min_validity_s: float = 60.0, lock_lease_s: float | None = None,
                 halt_recheck_s: float = 60.0, credentials_halt_s: float = 300.0) -> None:
        self.settings = settings
        self.mode = settings.procore_auth_mode
        self.redis = client
        self.pool = pool
        self.endpoint = endpoint or TokenEndpoint(settings, clock=clock)
        self.store = store or TokenStore(pool)
        self.keys = keys
        self.clock, self.sleep, self.monotonic = clock, sleep, monotonic
        self.min_validity_s = min_validity_s
        # one token call and its single retry must fit in the lease
        self.lock_lease_s = lock_lease_s or 2 * settings.http_timeout_s + 5
        self.halt_recheck_s = halt_recheck_s
        self.credentials_halt_s = credentials_halt_s
        self._release = client.register_script(_RELEASE)

    # --- readers ---

    def current(self) -> AccessToken:
        """A token valid for at least ``min_validity_s``; renews (once, shared) when needed."""
        raw_access, halted = self.redis.mget([self.keys.oauth_access, self.keys.oauth_halted])
        if halted is not None:
            raise AuthHalted(f"Procore calls halted: {as_text(halted)}", delay_s=self.halt_recheck_s)
        cached = _decode_access(raw_access)
        if cached and cached.expires_at - self.clock() > self.min_validity_s:
            return cached
        return self.renew(stale_generation=cached.generation if cached else None)

    def after_unauthorized(self, token: AccessToken) -> AccessToken:
        """Procore answered 401 to ``token``: a newer generation, renewing if nobody has yet."""
        return self.renew(stale_generation=token.generation)

    def halted_reason(self) -> str | None:
        raw = self.redis.get(self.keys.oauth_halted)
        return as_text(raw) if raw is not None else None

    def status(self) -> StoredTokens | None:
        return self.store.load()

    # --- renewal ---

    def renew(self, *, stale_generation: int | None) -> AccessToken:
        """A token of a generation newer than ``stale_generation`` (None: any valid one)."""
        owner = uuid.uuid4().hex
        deadline = self.monotonic() + self.lock_lease_s + 5
        while not self.redis.set(self.keys.oauth_refresh_lock, owner, nx=True,
                                 px=round(self.lock_lease_s * 1000)):
            ready = self._published_newer(stale_generation)
            if ready:
                return ready
            if self.monotonic() > deadline:
                raise AuthUnavailable("another process holds the token refresh lease", delay_s=1.0)
            self.sleep(0.05)
        try:
            return self._renew_locked(stale_generation)
        finally:
            self._release(keys=[self.keys.oauth_refresh_lock], args=[owner])

    def _published_newer(self, stale_generation: int | None) -> AccessToken | None:
        raw_access, halted = self.redis.mget([self.keys.oauth_access, self.keys.oauth_halted])
        if halted is not None:
            raise AuthHalted(f"Procore calls halted: {as_text(halted)}", delay_s=self.halt_recheck_s)
        cached = _decode_access(raw_access)
        if cached and (stale_generation is None or cached.generation > stale_generation) and \
                cached.expires_at - self.clock() > self.min_validity_s:
            return cached
        return None

    def _renew_locked(self, stale_generation: int | None) -> AccessToken:
        halted = self.halted_reason()
        if halted is not None:
            raise AuthHalted(f"Procore calls halted: {halted}", delay_s=self.halt_recheck_s)
        row = self.store.load()
        if row and row.access_valid(self.clock(), self.min_validity_s) and \
                (stale_generation is None or row.generation > stale_generation):
            return self._publish(AccessToken(row.access_token or "", row.access_expires_at or 0.0,
                                             row.generation))
        tokens = self._obtain(row)
        generation = self.store.commit(tokens, self.mode, replaces=row.generation if row else None)
        log.info("Procore access token renewed (%s, generation %d, valid %.0f s)", self.mode,
                 generation, tokens.expires_at - self.clock())
        return self._publish(AccessToken(tokens.access_token, tokens.expires_at, generation))

    def _obtain(self, row: StoredTokens | None) -> TokenSet:
        try:
            if self.mode == CLIENT_CREDENTIALS:
                return self.endpoint.client_credentials()
            if row is None or not row.refresh_token:
                self._halt("no refresh token stored (never logged in, or it was rejected)", durable=True)
            return self._refresh_once_more_if_lost(row.refresh_token)
        except AuthRejected as exc:
            if self.mode == CLIENT_CREDENTIALS or exc.error == "invalid_client":
                self._credentials_rejected(exc)
            self._reject(exc)

    def _refresh_once_more_if_lost(self, refresh_token: str) -> TokenSet:
        """A refresh whose answer was lost may or may not have used the token up: ask once more
        with the same token. If it was used up, the server says invalid_grant and we halt."""
        try:
            return self.endpoint.refresh(refresh_token)
        except AuthUnavailable as exc:
            log.warning("token refresh failed (%s); retrying once with the same refresh token", exc)
            self.sleep(0.5)
            return self.endpoint.refresh(refresh_token)

    # --- halting ---

    def _reject(self, exc: AuthRejected) -> NoReturn:
        with self.pool.connection() as conn:
            self.store.mark_rejected(conn, f"reauthorization required: {exc.error}")
            alerts.raise_alert(conn, ALERT_REAUTHORIZE, alerts.Severity.CRITICAL.value,
                               REAUTHORIZE_STEPS, {"error": exc.error, "command": "eva00 auth login"})
        self._halt(f"refresh token rejected ({exc.error}): run `eva00 auth login`", durable=True)

    def _credentials_rejected(self, exc: AuthRejected) -> NoReturn:
        with self.pool.connection() as conn:
            alerts.raise_alert(conn, ALERT_CREDENTIALS, alerts.Severity.CRITICAL.value,
                               CREDENTIALS_STEPS, {"error": exc.error})
        self._halt(f"client credentials rejected ({exc.error})", durable=False)

    def _halt(self, reason: str, *, durable: bool) -> NoReturn:
        ttl = None if durable else round(self.credentials_halt_s)
        pipe = self.redis.pipeline()
        pipe.set(self.keys.oauth_halted, reason, ex=ttl)
        pipe.delete(self.keys.oauth_access)
        pipe.execute()
        log.critical("Procore calls halted: %s", reason)
        raise AuthHalted(f"Procore calls halted: {reason}", delay_s=self.halt_recheck_s) from None

    # --- login ---

    def install(self, tokens: TokenSet) -> int:
        """Store tokens from an operator's login, lift the halt and resolve its alert."""
        generation = self.store.install(tokens, self.mode)
        self._publish(AccessToken(tokens.access_token, tokens.expires_at, generation))
        self.redis.delete(self.keys.oauth_halted)
        with self.pool.connection() as conn:
            alerts.resolve_alert(conn, ALERT_REAUTHORIZE)
            alerts.resolve_alert(conn, ALERT_CREDENTIALS)
        return generation

    def _publish(self, token: AccessToken) -> AccessToken:
        ttl_ms = round((token.expires_at - self.clock()) * 1000)
        payload = orjson.dumps({"token": token.value, "expires_at": token.expires_at,
                                "generation": token.generation})
        if ttl_ms > 0:
            self.redis.set(self.keys.oauth_access, payload, px=ttl_ms)
        return token


def _decode_access(raw: bytes | str | None) -> AccessToken | None:
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
        return AccessToken(str(data["token"]), float(data["expires_at"]), int(data["generation"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
