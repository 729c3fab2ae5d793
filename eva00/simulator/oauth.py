"""OAuth 2.0 as Procore's login host does it (Doorkeeper): client credentials, authorization code
(with the out-of-band variant) and refresh tokens that rotate and are single-use.

Token state machine:
- code: ISSUED -> USED (exchanged once) | EXPIRED (code_lifetime_s)
- access token: LIVE -> EXPIRED (token_lifetime_s, or /_sim/tokens/expire) | REVOKED
- refresh token: LIVE -> USED (on any use, even if the answer is lost) | REVOKED |
  EXPIRED (refresh_idle_expiry_s after it was issued, when set)
Tokens are random; the ledger and logs only ever see a token's id ("tok-12").
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eva00.simulator.options import SimOptions

MISSING = "The request is missing a required parameter: "
OOB = "urn:ietf:wg:oauth:2.0:oob"
INVALID_GRANT = ("The provided authorization grant is invalid, expired, revoked, does not match the "
                 "redirection URI used in the authorization request, or was issued to another client.")
INVALID_CLIENT = ("Client authentication failed due to unknown client, no client authentication "
                  "included, or unsupported authentication method.")


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class AccessToken:
    token_id: str
    client_id: str
    expires_at: float
    refresh: str | None
    revoked: bool = False
    created_at: float = 0.0


@dataclass
class RefreshToken:
    client_id: str
    issued_at: float
    access: str
    used: bool = False
    revoked: bool = False


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    expires_at: float
    used: bool = False


class OAuth:
    def __init__(self, options: SimOptions, clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self.clock = clock
        self._lock = threading.Lock()
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._codes: dict[str, Code] = {}
        self._serial = 0
        self.issued = 0

    # --- the token endpoint ---

    def token(self, params: dict[str, str]) -> dict[str, Any]:
        grant = params.get("grant_type")
        if not grant:
            raise OAuthError(400, "invalid_request", MISSING + "grant_type.")
        if grant not in ("client_credentials", "authorization_code", "refresh_token"):
            raise OAuthError(400, "unsupported_grant_type",
                             "The authorization grant type is not supported by the authorization server.")
        client_id = self._client(params)
        with self._lock:
            if grant == "client_credentials":
                return self._issue(client_id, with_refresh=False)
            if grant == "authorization_code":
                self._use_code(client_id, params)
            else:
                self._use_refresh(client_id, params)
            return self._issue(client_id, with_refresh=True)

    def _client(self, params: dict[str, str]) -> str:
        client_id, secret = params.get("client_id"), params.get("client_secret")
        if client_id != self.options.client_id or not secret or not secrets.compare_digest(
                secret, self.options.client_secret):
            raise OAuthError(401, "invalid_client", INVALID_CLIENT)
        return client_id

    def _use_code(self, client_id: str, params: dict[str, str]) -> None:
        value, redirect = params.get("code"), params.get("redirect_uri")
        if not value or not redirect:
            missing = "code" if not value else "redirect_uri"
            raise OAuthError(400, "invalid_request", f"{MISSING}{missing}.")
        code = self._codes.get(value)
        if (code is None or code.used or code.client_id != client_id or code.expires_at <= self.clock()
                or code.redirect_uri != redirect):
            raise OAuthError(400, "invalid_grant", INVALID_GRANT)
        code.used = True

    def _use_refresh(self, client_id: str, params: dict[str, str]) -> None:
        value = params.get("refresh_token")
        if not value:
            raise OAuthError(400, "invalid_request", MISSING + "refresh_token.")
        refresh = self._refresh.get(value)
        if refresh is None or refresh.revoked or refresh.used or refresh.client_id != client_id:
            raise OAuthError(400, "invalid_grant", INVALID_GRANT)
        refresh.used = True  # single use: dead from here on, whatever happens to the answer
        idle = self.options.refresh_idle_expiry_s
        if idle is not None and self.clock() - refresh.issued_at > idle:
            raise OAuthError(400, "invalid_grant", INVALID_GRANT)
        old = self._access.get(refresh.access)
        if old is not None:
            old.revoked = True

    def _issue(self, client_id: str, *, with_refresh: bool) -> dict[str, Any]:
        now = self.clock()
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32) if with_refresh else None
        self._serial += 1
        self.issued += 1
        lifetime = self.options.token_lifetime_s
        self._access[access] = AccessToken(f"tok-{self._serial}", client_id, now + lifetime, refresh,
                                           created_at=now)
        answer: dict[str, Any] = {"access_token": access, "token_type": "bearer",
                                  "expires_in": int(lifetime), "created_at": int(now)}
        if refresh is not None:
            self._refresh[refresh] = RefreshToken(client_id, now, access)
            answer["refresh_token"] = refresh
        return answer

    # --- authorize, revoke, lookups ---

    def check_authorize(self, params: dict[str, str]) -> str:
        """Validate an authorize request; returns the redirect URI."""
        if params.get("client_id") != self.options.client_id:
            raise OAuthError(401, "invalid_client", INVALID_CLIENT)
        if params.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type",
                             "The authorization server does not support this response type.")
        redirect = params.get("redirect_uri") or ""
        if redirect != OOB and not redirect.startswith(("http://127.0.0.1", "http://localhost", "https://")):
            raise OAuthError(400, "invalid_redirect_uri",
                             "The requested redirect uri is malformed or doesn't match client redirect URI.")
        return redirect

    def new_code(self, client_id: str, redirect_uri: str) -> str:
        value = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[value] = Code(client_id, redirect_uri, self.clock() + self.options.code_lifetime_s)
        return value

    def revoke(self, token: str) -> None:
        with self._lock:
            access = self._access.get(token)
            if access is not None:
                access.revoked = True
                if access.refresh and access.refresh in self._refresh:
                    self._refresh[access.refresh].revoked = True
            refresh = self._refresh.get(token)
            if refresh is not None:
                refresh.revoked = True
                if refresh.access in self._access:
                    self._access[refresh.access].revoked = True

    def lookup(self, token: str) -> tuple[AccessToken | None, str]:
        """The token and why it is refused ("" when it is good)."""
        access = self._access.get(token)
        if access is None:
            return None, "The access token is invalid"
        if access.revoked:
            return access, "The access token was revoked"
        if access.expires_at <= self.clock():
            return access, "The access token expired"
        return access, ""

    def expire_all(self) -> int:
        now = self.clock()
        with self._lock:
            for access in self._access.values():
                access.expires_at = min(access.expires_at, now)
            return len(self._access)
