"""The simulator: the gatekeepers every API request passes, in Procore's order (state: state.py).

API host: /_sim (control, unrecorded) | /oauth (login host) | everything else: rate limit (every
request counts) -> injected faults -> Accept (406) -> bearer token (401) -> Procore-Company-Id
(400/403) -> route (404/405) -> answer, with X-Rate-Limit-* headers on every answer.
"""

from __future__ import annotations

import logging
import random
import time

from eva00.simulator import api, control, login, storage
from eva00.simulator.state import SimState
from eva00.simulator.web import HttpError, Request, Response, bearer, error

log = logging.getLogger("eva00.simulator")
PRE_FAULTS = frozenset({"5xx", "503", "slow", "reset"})
POST_FAULTS = frozenset({"truncate", "malformed_json", "wrong_total", "unknown_shape"})
OVER_LIMIT = ("You have surpassed the max number of requests for this time window. "
              "Please wait before making more requests.")


class Simulator(SimState):
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
        elif fault.mode == "unknown_shape":
            response.body = b'{"results":' + bytes(response.body) + b"}"  # type: ignore[arg-type]
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

    # --- the file host ---

    def handle_files(self, req: Request) -> Response:
        """Record file URLs: 401 without a valid bearer token, otherwise (within the rate limit,
        which the file host shares with the API) a 302 to a signed storage URL."""
        token_text = bearer(req, False)
        access, why = self.oauth.lookup(token_text) if token_text else (None, "The access token is missing")
        req.meta["token_id"] = access.token_id if access else None
        decision = self.limiter.check((access.client_id if access else "anonymous",
                                       req.header("Procore-Company-Id") or "-"))
        if not decision.allowed:
            req.meta["limited"] = True
            return Response(429, OVER_LIMIT.encode(), [*decision.headers(),
                            ("Retry-After", str(decision.retry_after_s))], content_type="text/plain")
        if access is None or why:
            return error(401, why or "The access token is invalid",
                         [("WWW-Authenticate", 'Bearer realm="Procore", error="invalid_token"')])
        response = storage.file_redirect(self, req)
        response.headers += decision.headers()
        return response

    def record_files(self, req: Request, response: Response, sent: int) -> None:
        self.ledger.record(t=req.received_at, method=req.method, path=req.path, query=req.raw_query,
                           status=response.status, company_id=req.header("Procore-Company-Id"),
                           token_id=req.meta.get("token_id"), bytes=sent, host="files",
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
