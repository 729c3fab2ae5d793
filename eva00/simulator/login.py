"""The login host's paths (/oauth/...): token, authorize (with its approval page and the
out-of-band code display), revoke and token info. Bodies arrive form-encoded, multipart or JSON.
Errors are OAuth's ``{"error", "error_description"}`` with 400 or 401.
"""

from __future__ import annotations

import base64
import html
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

import orjson

from eva00.simulator.oauth import OOB, OAuthError
from eva00.simulator.web import Request, Response, bearer, json_response

if TYPE_CHECKING:
    from eva00.simulator.state import SimState

HTML = "text/html; charset=utf-8"
NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
PAGE = """<!doctype html><html><head><title>Authorize EVA-00 Sync</title></head><body>
<h1>Authorize {client} to use your Procore account?</h1>
<form method="post" action="/oauth/authorize">{fields}
<button type="submit" name="decision" value="approve">Authorize</button>
<button type="submit" name="decision" value="deny">Deny</button></form></body></html>"""
CODE_PAGE = """<!doctype html><html><head><title>Authorization code</title></head><body>
<h1>Authorization code</h1><p>Copy this code and paste it into the application:</p>
<code id="authorization_code">{code}</code></body></html>"""


def params_of(req: Request, lenient: bool) -> dict[str, str]:
    params = dict(parse_qsl(req.raw_query, keep_blank_values=True))
    kind = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if req.body:
        if kind == "application/json":
            try:
                data = orjson.loads(req.body)
            except orjson.JSONDecodeError:
                raise OAuthError(400, "invalid_request", "The request body is not valid JSON.") from None
            if not isinstance(data, dict):
                raise OAuthError(400, "invalid_request", "The request body must be a JSON object.")
            params.update({str(k): str(v) for k, v in data.items() if v is not None})
        elif kind == "multipart/form-data":
            params.update(_multipart(req))
        else:
            params.update(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
    basic = req.header("Authorization") or ""
    if lenient and basic.lower().startswith("basic ") and "client_id" not in params:
        try:
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        except ValueError:
            client_id, secret = "", ""
        params.update({"client_id": client_id, "client_secret": secret})
    return params


def _multipart(req: Request) -> dict[str, str]:
    head = f"Content-Type: {req.header('Content-Type')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + req.body)
    found = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            found[name] = payload.decode("utf-8", "replace")
    return found


def handle(sim: SimState, req: Request) -> Response:
    routes = {"/oauth/token": ("POST", token), "/oauth/revoke": ("POST", revoke),
              "/oauth/authorize": ("GET POST", authorize), "/oauth/authorize/native": ("GET", native),
              "/oauth/token/info": ("GET", info)}
    found = routes.get(req.path.rstrip("/") or "/")
    if found is None:
        return json_response(404, {"error": "not_found", "error_description": "Not Found"})
    if req.method not in found[0].split():
        return json_response(405, {"error": "invalid_request", "error_description": "Method not allowed"},
                             [("Allow", found[0].replace(" ", ", "))])
    try:
        return found[1](sim, req)
    except OAuthError as exc:
        return json_response(exc.status, exc.body(), NO_STORE)


def token(sim: SimState, req: Request) -> Response:
    answer = sim.oauth.token(params_of(req, sim.options.lenient))
    return json_response(200, answer, NO_STORE)


def revoke(sim: SimState, req: Request) -> Response:
    params = params_of(req, sim.options.lenient)
    if not sim.options.lenient:
        sim.oauth._client(params)
    if not params.get("token"):
        raise OAuthError(400, "invalid_request", "The request is missing a required parameter: token.")
    sim.oauth.revoke(params["token"])
    return json_response(200, {}, NO_STORE)


def authorize(sim: SimState, req: Request) -> Response:
    params = params_of(req, False)
    redirect = sim.oauth.check_authorize(params)
    decision = params.get("decision")
    if req.method == "GET" and not sim.options.auto_approve:
        keep = ("client_id", "redirect_uri", "response_type", "state")
        fields = "".join(f'<input type="hidden" name="{k}" value="{html.escape(params[k])}">'
                         for k in keep if k in params)
        page = PAGE.format(client=html.escape(params["client_id"]), fields=fields)
        return Response(200, page.encode(), NO_STORE, content_type=HTML)
    state = [("state", params["state"])] if "state" in params else []
    if decision == "deny":
        target = f"{redirect}?{urlencode([('error', 'access_denied'), *state])}"
        return Response(302, b"", [("Location", target), *NO_STORE])
    code = sim.oauth.new_code(params["client_id"], redirect)
    if redirect == OOB:
        target = f"/oauth/authorize/native?{urlencode({'code': code})}"
    else:
        target = f"{redirect}{'&' if '?' in redirect else '?'}{urlencode([('code', code), *state])}"
    return Response(302, b"", [("Location", target), *NO_STORE])


def native(sim: SimState, req: Request) -> Response:
    code = html.escape(req.q("code") or "")
    return Response(200, CODE_PAGE.format(code=code).encode(), NO_STORE, content_type=HTML)


def info(sim: SimState, req: Request) -> Response:
    text = bearer(req, sim.options.lenient)
    access, why = sim.oauth.lookup(text) if text else (None, "The access token is missing")
    if access is None or why:
        return json_response(401, {"error": "invalid_token", "error_description": why})
    return json_response(200, {"resource_owner_id": 300_001, "scope": [],
                               "expires_in_seconds": int(access.expires_at - sim.oauth.clock()),
                               "application": {"uid": access.client_id},
                               "created_at": int(access.created_at)})
