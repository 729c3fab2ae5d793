"""The simulator: its state and the gatekeepers every API request passes, in Procore's order.

API host: /_sim (control, unrecorded) | /oauth (login host) | everything else: rate limit (every
request counts) -> injected faults -> Accept (406) -> bearer token (401) -> Procore-Company-Id
(400/403) -> route (404/405) -> answer, with X-Rate-Limit-* headers on every answer.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from email.utils import formatdate
from typing import Any

from eva00.simulator import api, control, login, storage
from eva00.simulator.blobs import BlobRegistry
from eva00.simulator.churn import Churn
from eva00.simulator.clock import today_epoch
from eva00.simulator.faults import Faults
from eva00.simulator.generator import generate
from eva00.simulator.ledger import Ledger
from eva00.simulator.mutations import Mutator
from eva00.simulator.oauth import OAuth
from eva00.simulator.options import SimOptions
from eva00.simulator.ratelimit import RateLimiter
from eva00.simulator.records import World
from eva00.simulator.store import Store
from eva00.simulator.web import HttpError, Request, Response, error

log = logging.getLogger("eva00.simulator")
PRE_FAULTS = frozenset({"5xx", "503", "slow", "reset"})
POST_FAULTS = frozenset({"truncate", "malformed_json", "wrong_total"})
OVER_LIMIT = ("You have surpassed the max number of requests for this time window. "
              "Please wait before making more requests.")


class Simulator:
    def __init__(self, options: SimOptions, api_base: str, storage_base: str) -> None:
        self.options = options
        self.api_base = api_base
        self.storage_base = storage_base
        self.started_at = time.time()
        self.last_modified = formatdate(self.started_at, usegmt=True)
        self.sign_key = secrets.token_bytes(32)
        self.blobs = BlobRegistry()
        self.store = Store(options.company_id, self.blobs)
        self.world = World(random.Random(options.seed), api_base, self.blobs, options.file_size_bytes,
                           options.company_id)
        # The data is generated in the server's time, like its Date headers: with a skewed clock
        # the newest daily log is the server's today, not the host's (they differ near midnight).
        server_now = self.now()
        generate(self.store, self.world, options.projects, options.items,
                 options.anchor_epoch or today_epoch(server_now), now=server_now)
        self.oauth = OAuth(options)
        self.limiter = RateLimiter(options)
        self.faults = Faults(options.seed)
        self.ledger = Ledger()
        from eva00.simulator.webhooks import Webhooks

        self.webhooks = Webhooks(options, seed=options.seed)
        self.mutator = Mutator(self.store, self.world, self.webhooks.emit, clock=self.now)
        self.churn = Churn(self.mutator, options, seed=options.seed + 1)

    def now(self) -> float:
        """The server's time (the host's, shifted by clock_offset_s)."""
        return time.time() + self.options.clock_offset_s

    def start(self) -> None:
        self.webhooks.start()
        self.churn.start()

    def stop(self) -> None:
        self.churn.stop()
        self.webhooks.stop()

    def signed_url(self, file_id: int) -> str:
        expires = int(time.time() + self.options.signed_url_ttl_s)
        return (f"{self.storage_base}/blobs/{file_id}?expires={expires}"
                f"&sig={storage.sign(self.sign_key, file_id, expires)}")

    # --- the API host ---

    def handle_api(self, req: Request) -> Response:
        if req.path.startswith("/_sim"):
            req.meta["control"] = True
            return control.handle(self, req)
        if req.path.startswith("/oauth"):
            return login.handle(self, req)
        token_text = bearer(req, self.options.lenient)
        access, why = self.oauth.lookup(token_text) if token_text else (None, "The access token is missing")
        req.meta["token_id"] = access.token_id if access else None
        company = req.header("Procore-Company-Id")
        decision = self.limiter.check((access.client_id if access else "anonymous", company or "-"))
        if not decision.allowed:
            req.meta["limited"] = True
            if random.random() < self.options.drop_connection_ratio:
                return Response(0, action="drop")
            return Response(429, OVER_LIMIT.encode(), [*decision.headers(),
                            ("Retry-After", str(decision.retry_after_s))], content_type="text/plain")
        response = self._faulted_answer(req, access is not None and not why, why)
        response.headers += decision.headers()
        return response

    def _faulted_answer(self, req: Request, authorized: bool, why: str) -> Response:
        fault = self.faults.pick("api", req.path, PRE_FAULTS)
        if fault is not None:
            req.meta["fault"] = fault.mode
            if fault.mode == "5xx":
                return error(random.choice((500, 502, 504)), "Internal Server Error")
            if fault.mode == "503":
                return error(503, "Service Unavailable", [("Retry-After", str(int(fault.retry_after_s)))])
            if fault.mode == "reset":
                return Response(0, action="reset")
            time.sleep(fault.delay_s)
        try:
            response = self._answer(req, authorized, why)
        except HttpError as exc:
            response = error(exc.status, exc.message)
        if 200 <= response.status < 300 and isinstance(response.body, bytes):
            self._post_fault(req, response)
        return response

    def _answer(self, req: Request, authorized: bool, why: str) -> Response:
        if not self.options.lenient and not accepts_json(req.header("Accept")):
            raise HttpError(406, "Not Acceptable: this endpoint answers application/json")
        if not authorized:
            return error(401, why, [("WWW-Authenticate", f'Bearer realm="Procore", error="invalid_token", '
                                                         f'error_description="{why}"')])
        company = req.header("Procore-Company-Id")
        req.meta["company_id"] = company
        if company is None and not self.options.lenient:
            raise HttpError(self.options.missing_company_status, "The Procore-Company-Id header is required")
        if company is not None and (not company.strip().isdigit() or int(company) != self.options.company_id):
            raise HttpError(403, "App is not connected to this company")
        return api.dispatch(self, req)

    def _post_fault(self, req: Request, response: Response) -> None:
        modes = POST_FAULTS if response.header("Total") else POST_FAULTS - {"wrong_total"}
        fault = self.faults.pick("api", req.path, modes)
        if fault is None:
            return
        req.meta["fault"] = fault.mode
        if fault.mode == "truncate":
            response.action = "truncate"
        elif fault.mode == "malformed_json":
            body = bytes(response.body)  # type: ignore[arg-type]
            response.body = body[:max(1, len(body) // 2)] + b'",}{'
        else:
            total = int(response.header("Total") or 0)
            response.set_header("Total", str(total + random.randint(1, 50)))

    def record_api(self, req: Request, response: Response, sent: int) -> None:
        if req.meta.get("control"):
            return
        self.ledger.record(t=req.received_at, method=req.method, path=req.path, query=req.raw_query,
                           status=response.status, company_id=req.meta.get("company_id",
                                                                           req.header("Procore-Company-Id")),
                           token_id=req.meta.get("token_id"), bytes=sent, host="api",
                           authorization_present=req.header("Authorization") is not None,
                           limited=bool(req.meta.get("limited")), fault=req.meta.get("fault"))

    # --- the storage host ---

    def handle_storage(self, req: Request) -> Response:
        return storage.handle(self, req)

    def record_storage(self, req: Request, response: Response, sent: int) -> None:
        self.ledger.record(t=req.received_at, method=req.method, path=req.path,
                           query=redact_signature(req.raw_query), status=response.status, company_id=None,
                           token_id=None, bytes=sent, host="storage",
                           authorization_present=req.header("Authorization") is not None, limited=False,
                           fault=req.meta.get("fault"))

    def figures(self) -> dict[str, Any]:
        return {**self.ledger.figures(), "violations": self.limiter.refused,
                "windows": self.limiter.figures(), "webhooks": self.webhooks.figures(),
                "tokens_issued": self.oauth.issued, "records": self.store.count(), "files": len(self.blobs),
                "churn": self.churn.figures(), "uptime_s": round(time.time() - self.started_at, 3)}


def bearer(req: Request, lenient: bool) -> str | None:
    value = req.header("Authorization")
    if value is not None:
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return req.q("access_token") if lenient else None


def accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media in ("*/*", "application/*", "application/json") or media.endswith("+json"):
            return True
    return False


def redact_signature(query: str) -> str:
    return "&".join("sig=REDACTED" if part.startswith("sig=") else part for part in query.split("&"))
