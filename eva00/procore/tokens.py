"""OAuth tokens: the token endpoint (both grants and refresh) and the PostgreSQL token store.

PostgreSQL (`oauth_tokens`) is the durable truth, one row per credential set. ``generation`` rises
by one with every token obtained; a commit names the generation it replaces, so a process holding
an expired refresh lease can never overwrite a newer rotation. Token values never reach a repr,
a log line or an exception message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import psycopg
import requests
from psycopg_pool import ConnectionPool

from eva00.config import Settings
from eva00.procore.errors import AuthRejected, AuthUnavailable

CLIENT_CREDENTIALS = "client_credentials"
AUTHORIZATION_CODE = "authorization_code"
OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"


@dataclass(frozen=True)
class TokenSet:
    """What one token call returned."""

    access_token: str = field(repr=False)
    expires_at: float  # epoch s, counted from when the request was sent (conservative)
    refresh_token: str | None = field(repr=False)
    obtained_at: float


class TokenEndpoint:
    """POST {login}/oauth/token; failures sorted into AuthUnavailable (retry) and AuthRejected."""

    def __init__(self, settings: Settings, *, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self.clock = clock

    @property
    def token_url(self) -> str:
        return f"{self.settings.login_base}/oauth/token"

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"response_type": "code", "client_id": self.settings.client_id,
                           "redirect_uri": redirect_uri, "state": state})
        return f"{self.settings.login_base}/oauth/authorize?{query}"

    def client_credentials(self) -> TokenSet:
        return self._post({"grant_type": CLIENT_CREDENTIALS})

    def authorization_code(self, code: str, redirect_uri: str) -> TokenSet:
        return self._post({"grant_type": AUTHORIZATION_CODE, "code": code, "redirect_uri": redirect_uri})

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._post({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _post(self, form: dict[str, str]) -> TokenSet:
        form = {**form, "client_id": self.settings.client_id, "client_secret": self.settings.client_secret}
        sent = self.clock()
        try:
            response = self.session.post(self.token_url, data=form, timeout=self.settings.http_timeout_s,
                                         allow_redirects=False, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            # the exception text could carry the request; only its type is kept
            raise AuthUnavailable(f"token endpoint unreachable ({type(exc).__name__})",
                                  delay_s=1.0, endpoint="oauth/token") from None
        return self._parse(response, sent)

    def _parse(self, response: requests.Response, sent: float) -> TokenSet:
        status = response.status_code
        body = _json_object(response)
        if status >= 500 or status == 429:
            raise AuthUnavailable(f"token endpoint answered {status}", delay_s=1.0, status=status,
                                  endpoint="oauth/token")
        if status >= 400:
            error = str(body.get("error") or f"http_{status}")
            description = str(body.get("error_description") or "")[:200]
            raise AuthRejected(f"token endpoint refused the grant: {error} {description}".strip(),
                               error=error, status=status)
        access, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(access, str) or not access or not isinstance(expires_in, int | float):
            raise AuthUnavailable(f"token endpoint answered {status} without a token", delay_s=1.0,
                                  status=status, endpoint="oauth/token")
        refresh = body.get("refresh_token")
        return TokenSet(access, sent + float(expires_in), refresh if isinstance(refresh, str) else None,
                        sent)


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class StoredTokens:
    """One row of oauth_tokens."""

    name: str
    auth_mode: str | None
    access_token: str | None = field(repr=False)
    access_expires_at: float | None
    refresh_token: str | None = field(repr=False)
    generation: int
    obtained_at: float | None
    last_refreshed_at: float | None
    last_error: str | None

    def access_valid(self, now: float, margin_s: float) -> bool:
        return bool(self.access_token) and (self.access_expires_at or 0) - now > margin_s


class GenerationConflict(Exception):
    """The row moved past the generation this commit meant to replace."""


_COLUMNS = ("name, auth_mode, access_token, access_expires_at, refresh_token, generation, obtained_at,"
            " last_refreshed_at, last_error")


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class TokenStore:
    def __init__(self, pool: ConnectionPool, name: str = "default") -> None:
        self.pool = pool
        self.name = name

    def load(self) -> StoredTokens | None:
        with self.pool.connection() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM oauth_tokens WHERE name = %s",
                               (self.name,)).fetchone()
        if row is None:
            return None
        return StoredTokens(row[0], row[1], row[2], _epoch(row[3]), row[4], int(row[5]), _epoch(row[6]),
                            _epoch(row[7]), row[8])

    def commit(self, tokens: TokenSet, mode: str, *, replaces: int | None) -> int:
        """Store a rotation of generation ``replaces`` (None: no row yet); returns the new one."""
        with self.pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO oauth_tokens AS t (name, auth_mode, access_token, access_expires_at,"
                " refresh_token, generation, obtained_at, last_refreshed_at, last_error, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, 1, %s, %s, NULL, now())"
                " ON CONFLICT (name) DO UPDATE SET auth_mode = EXCLUDED.auth_mode,"
                " access_token = EXCLUDED.access_token, access_expires_at = EXCLUDED.access_expires_at,"
                " refresh_token = EXCLUDED.refresh_token, generation = t.generation + 1,"
                " obtained_at = EXCLUDED.obtained_at, last_refreshed_at = EXCLUDED.last_refreshed_at,"
                " last_error = NULL, updated_at = now()"
                " WHERE t.generation = %s RETURNING generation",
                (self.name, mode, tokens.access_token, _ts(tokens.expires_at), tokens.refresh_token,
                 _ts(tokens.obtained_at), _ts(tokens.obtained_at),
                 -1 if replaces is None else replaces)).fetchone()
        if row is None:
            raise GenerationConflict(f"oauth_tokens {self.name!r} is past generation {replaces}")
        return int(row[0])

    def install(self, tokens: TokenSet, mode: str) -> int:
        """An operator's login: replaces whatever generation is stored."""
        current = self.load()
        return self.commit(tokens, mode, replaces=current.generation if current else None)

    def mark_rejected(self, conn: psycopg.Connection, error: str) -> None:
        """The stored tokens are dead: forget them, so no process can try them again."""
        conn.execute(
            "UPDATE oauth_tokens SET access_token = NULL, access_expires_at = NULL,"
            " refresh_token = NULL, last_error = %s, updated_at = now() WHERE name = %s",
            (error, self.name))

    def record_error(self, error: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("UPDATE oauth_tokens SET last_error = %s, updated_at = now() WHERE name = %s",
                         (error, self.name))
