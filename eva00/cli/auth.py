"""`eva00 auth login|status`: the operator's side of OAuth.

``login`` (authorization-code mode) prints the authorize URL and takes the code either from a
one-shot listener on 127.0.0.1 (when PROCORE_REDIRECT_URI is http://127.0.0.1:PORT/... or
http://localhost:PORT/...) or pasted (the out-of-band urn:ietf:wg:oauth:2.0:oob, or --paste),
exchanges it, stores the tokens and lifts a halt. ``status`` shows mode, generation, expiry and
last refresh; no token or secret is ever printed.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from eva00.config import EXIT_CONFIG, ConfigError, Settings
from eva00.procore.auth import Authenticator
from eva00.procore.errors import AuthRejected, AuthUnavailable
from eva00.procore.tokens import AUTHORIZATION_CODE, OOB_REDIRECT_URI, StoredTokens, TokenEndpoint

EXIT_FAILED = 1
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


class CodeListener:
    """Answers exactly one request to the redirect path on 127.0.0.1, then stops."""

    def __init__(self, redirect_uri: str, state: str) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or not parts.port:
            raise ValueError("the callback listener needs a redirect URI like http://127.0.0.1:8765/callback")
        self.path = parts.path or "/"
        self.state = state
        self.code: str | None = None
        self.error: str | None = None
        self.server = HTTPServer(("127.0.0.1", parts.port), self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path != listener.path:
                    self.send_error(404)
                    return
                if query.get("state") != listener.state:
                    listener.error = "the callback's state does not match this login"
                elif "code" not in query:
                    listener.error = query.get("error", "the callback carried no code")
                else:
                    listener.code = query["code"]
                ok = listener.code is not None
                body = (b"EVA-00: authorised, you can close this window." if ok
                        else b"EVA-00: authorisation failed; see the terminal.")
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # the URL carries the code
                return

        return Handler

    def wait(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        self.server.timeout = 0.5
        try:
            while self.code is None and self.error is None and time.monotonic() < deadline:
                self.server.handle_request()
        finally:
            self.server.server_close()
        if self.code is None:
            raise TimeoutError(self.error or f"no callback within {timeout_s:.0f} s")
        return self.code


def login(settings: Settings, auth: Authenticator, endpoint: TokenEndpoint, *,
          show: Callable[[str], None], read_code: Callable[[], str], paste: bool = False,
          timeout_s: float = 600.0) -> int:
    """Run one authorization-code login; returns the stored generation."""
    state = secrets.token_urlsafe(16)
    redirect_uri = settings.procore_redirect_uri
    use_listener = not paste and redirect_uri != OOB_REDIRECT_URI
    listener = CodeListener(redirect_uri, state) if use_listener else None
    show(f"Open this URL in a browser, sign in to Procore and approve EVA-00:\n\n  "
         f"{endpoint.authorize_url(redirect_uri, state)}\n")
    if listener is not None:
        show(f"Waiting for the callback on {redirect_uri} ...")
        code = listener.wait(timeout_s)
    else:
        code = read_code().strip()
    return auth.install(endpoint.authorization_code(code, redirect_uri))


def describe(row: StoredTokens | None, mode: str, halted: str | None, now: float) -> list[str]:
    lines = [f"mode:           {mode}"]
    if row is None:
        return [*lines, "tokens:         none stored (run `eva00 auth login`, or let a process obtain"
                " one in client_credentials mode)"]
    expires = row.access_expires_at
    lines += [
        f"generation:     {row.generation}",
        f"access token:   {'present' if row.access_token else 'absent'}"
        + (f", expires {_when(expires)} ({(expires - now) / 60:+.0f} min)" if expires else ""),
        f"refresh token:  {'present' if row.refresh_token else 'absent'}",
        f"obtained:       {_when(row.obtained_at)}",
        f"last refresh:   {_when(row.last_refreshed_at)}",
        f"last error:     {row.last_error or '-'}",
        f"calls halted:   {halted or 'no'}",
    ]
    return lines


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if epoch else "-"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="eva00 auth", description="Procore OAuth login and status.")
    sub = parser.add_subparsers(dest="command", required=True)
    login_parser = sub.add_parser("login", help="authorization-code login (prints the authorize URL)")
    login_parser.add_argument("--paste", action="store_true", help="paste the code instead of listening")
    login_parser.add_argument("--timeout-s", type=float, default=600.0)
    sub.add_parser("status", help="mode, expiry and last refresh (never the tokens)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"eva00: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from eva00.procore import build_authenticator
    from eva00.runtime.process import connect

    client, pool = connect(settings, "eva00-auth", pool_size=1)
    try:
        auth = build_authenticator(settings, client, pool)
        if args.command == "status":
            print("\n".join(describe(auth.status(), settings.procore_auth_mode, auth.halted_reason(),
                                     time.time())))
            return 0
        return _login_command(settings, auth, args)
    finally:
        pool.close()
        client.close()


def _login_command(settings: Settings, auth: Authenticator, args: argparse.Namespace) -> int:
    if settings.procore_auth_mode != AUTHORIZATION_CODE:
        print("PROCORE_AUTH_MODE is client_credentials: no login is needed (tokens are obtained"
              " with the client id and secret).", file=sys.stderr)
        return EXIT_FAILED
    try:
        generation = login(settings, auth, TokenEndpoint(settings), show=print,
                           read_code=lambda: input("Paste the code shown by Procore: "),
                           paste=args.paste, timeout_s=args.timeout_s)
    except (AuthRejected, AuthUnavailable, TimeoutError, ValueError, OSError) as exc:
        print(f"eva00 auth login failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Tokens stored (generation {generation}); Procore calls may resume.")
    return 0
