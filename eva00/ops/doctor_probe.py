"""The doctor's questions to Procore: asked through the product's client, answers kept.

Every request goes through ProcoreClient (the shared token and its renewal, the rate limiter,
the circuit breaker), charged to the on-demand budget with a deadline, so the doctor waits its
turn like any operator command and never bypasses a pause. A response hook on the client's
session keeps each answer's status, ``Date`` and ``X-Rate-Limit-*`` headers and, for an error,
the server's one-line reason: the rate-limit and clock checks read those instead of asking
again, and a refused call still says why. Token values and response bodies of successful calls
are never kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
import requests

from eva00.procore import BudgetClass, ProcoreClient
from eva00.procore.errors import AuthHalted, AuthRejected, AuthUnavailable, ProcoreError
from eva00.procore.http import netloc_of

CALL_DEADLINE_S = 15.0  # longest wait for the limiter's token, per question
LOGIN_PATHS = "/oauth/"  # the token endpoint's; the simulator serves them on the API host too
KEPT_HEADERS = ("Date", "X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")


@dataclass(frozen=True)
class Answer:
    """One HTTP answer the client received (the token endpoint's included)."""

    host: str  # host:port, as ProcoreClient compares hosts
    path: str
    status: int
    headers: Mapping[str, str]  # only KEPT_HEADERS
    elapsed_s: float  # request sent -> headers received
    received_at_s: float  # this host's clock when the answer arrived
    reason: str = ""  # the server's error message of a 4xx/5xx, one line


@dataclass(frozen=True)
class Reply:
    """What one question came to: an HTTP status (0: no answer) and the decoded body of a 2xx."""

    status: int
    body: Any = None
    problem: str = ""  # why it is not a 2xx, one line, never a secret
    halted: bool = False  # Procore calls are halted (rejected credentials, no login)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not self.problem


class Recorder:
    """A requests response hook that keeps what the checks need of every answer."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.answers: list[Answer] = []

    def session(self) -> requests.Session:
        session = requests.Session()
        session.hooks["response"].append(self.keep)
        return session

    def keep(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        reason = "" if response.status_code < 400 or kwargs.get("stream") else error_reason(response)
        self.answers.append(Answer(
            netloc_of(response.url), urlsplit(response.url).path, response.status_code,
            {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers},
            response.elapsed.total_seconds(), self.clock(), reason))



def error_reason(response: requests.Response) -> str:
    """Procore's ``{"errors": ...}`` or OAuth's ``{"error", "error_description"}``, one line."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    text = body.get("errors") or body.get("error_description") or body.get("error") or ""
    return " ".join(str(text).split())[:200]


class ProcoreProbe:
    def __init__(self, client: ProcoreClient, recorder: Recorder, *,
                 deadline_s: float = CALL_DEADLINE_S) -> None:
        self.client = client
        self.recorder = recorder
        self.deadline_s = deadline_s

    def api_answers(self, header: str | None = None) -> list[Answer]:
        """Answers of the API host (the embedded simulator's login paths excepted), oldest first."""
        host = netloc_of(self.client.settings.api_base)
        return [a for a in self.recorder.answers if a.host == host and not a.path.startswith(LOGIN_PATHS)
                and (header is None or header in a.headers)]

    def login_answers(self, header: str | None = None) -> list[Answer]:
        host = netloc_of(self.client.settings.login_base)
        return [a for a in self.recorder.answers if a.host == host and a.path.startswith(LOGIN_PATHS)
                and (header is None or header in a.headers)]

    def try_credentials(self) -> Reply:
        """One client-credentials grant at the token endpoint, its token dropped: the client id and
        secret are checked even while a cached token still works, and a refusal is reported
        without halting every process (the Authenticator would halt them)."""
        from eva00.procore.tokens import TokenEndpoint

        endpoint = TokenEndpoint(self.client.settings, session=self.client.session)
        try:
            endpoint.client_credentials()
        except AuthRejected as exc:
            return Reply(exc.status or 401, problem=str(exc))
        except AuthUnavailable as exc:
            return Reply(exc.status or 0, problem=str(exc))
        return Reply(200)

    def ask(self, path: str, params: Mapping[str, Any] | None = None) -> Reply:
        before = len(self.recorder.answers)
        try:
            body, response = self.client.get_json(path, budget=BudgetClass.ON_DEMAND, params=params,
                                                   deadline_s=self.deadline_s)
        except AuthHalted as exc:
            return Reply(0, problem=str(exc), halted=True)
        except ProcoreError as exc:
            return Reply(exc.status or 0, problem=self._why(str(exc), before))
        except (redis.RedisError, psycopg.Error) as exc:
            return Reply(0, problem=f"{type(exc).__name__} from Redis or PostgreSQL mid-check")
        return Reply(response.status_code, body)

    def _why(self, message: str, before: int) -> str:
        reasons = [a.reason for a in self.recorder.answers[before:] if a.reason]
        return f"{message}: {reasons[-1]}" if reasons else message
