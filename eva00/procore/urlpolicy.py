"""The one URL policy: which URLs may be fetched, where they may connect, and which carry the token.

Every URL the product fetches (record file URLs, every redirect hop, cover-sheet links, the API
itself) passes ``UrlPolicy.check``: parsed with urllib3's own parser (the one requests sends
with, so the host we judge is the host we connect to), refusing user-info, backslashes, whitespace
and control characters, and any scheme but https. A host's addresses are judged when the
connection is made, by the pinned connection classes ``mount`` installs on a session: the name is
resolved once, every address must be public (not private, loopback, link-local, multicast,
reserved or unspecified, IPv4-mapped forms included), and the socket connects to the checked
address while TLS still verifies the certificate against the host name. So a second DNS answer
cannot swap in a private address between the check and the connect, on any hop.

The bearer token goes to a URL only when ``may_carry_token``: https, and the host is the API or
login host or matches a bearer-host pattern (``EVA00_BEARER_HOSTS``: ``host``, ``host:port`` or
``*.domain``). ``allow_loopback`` (the simulator: embedded mode or ``EVA00_ALLOW_LOOPBACK_URLS``)
admits http and loopback addresses, and then the API host's own loopback name on any port (the
simulator's file host); it is never on by default.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from eva00.config import Settings
from eva00.procore.errors import UnsafeUrl

Resolver = Callable[..., list[tuple[Any, ...]]]

_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class UrlRefused(UnsafeUrl):
    """The policy refuses this URL or address; ``reason`` says why (no query string in it)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason}: {shown(url)}")
        self.reason = reason


def shown(url: str) -> str:
    """A URL fit for a log: no query (signatures), no user-info, control characters escaped."""
    head = url.split("?", 1)[0].split("#", 1)[0]
    if "@" in head.split("://", 1)[-1].split("/", 1)[0]:
        scheme, _, rest = head.partition("://")
        head = f"{scheme}://(user-info)@{rest.split('@', 1)[-1]}"
    return head.encode("unicode_escape").decode("ascii")[:300]


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str  # https, or http when loopback is allowed
    host: str  # lowercase, no brackets, no trailing dot
    port: int

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"


def is_public(address: str) -> bool:
    """A global unicast address (what an attacker-supplied URL may reach)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if mapped is not None and not is_public(str(mapped)):
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_unspecified


class HostPatterns:
    """``host``, ``host:port`` (only that port) or ``*.domain`` (any subdomain, not the domain)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries: list[tuple[str, int | None]] = []
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            if not text:
                continue
            host, port = _split_host_port(text)
            self.entries.append((host, port))

    def match(self, host: str, port: int) -> bool:
        for pattern, wanted_port in self.entries:
            if wanted_port is not None and wanted_port != port:
                continue
            if pattern.startswith("*."):
                if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                    return True
            elif host == pattern:
                return True
        return False


def _split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port) if port.isdigit() else None
    return text, None


class UrlPolicy:
    def __init__(self, *, token_netlocs: Iterable[str], bearer_hosts: Iterable[str], allow_loopback: bool,
                 resolver: Resolver = socket.getaddrinfo) -> None:
        self.token_netlocs = frozenset(token_netlocs)
        self.allow_loopback = allow_loopback
        self.resolver = resolver
        patterns = list(bearer_hosts)
        if allow_loopback:
            # The simulator's file host binds the API's loopback address on a port of its own.
            patterns += [n.rsplit(":", 1)[0] for n in self.token_netlocs
                         if n.rsplit(":", 1)[0].strip("[]") in LOOPBACK_NAMES]
        self.bearer = HostPatterns(patterns)

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver = socket.getaddrinfo) -> UrlPolicy:
        allow = settings.loopback_urls_allowed
        probe = cls(token_netlocs=(), bearer_hosts=(), allow_loopback=allow, resolver=resolver)
        netlocs = [probe.check(base).netloc for base in (settings.api_base, settings.login_base)]
        return cls(token_netlocs=netlocs, bearer_hosts=settings.effective_bearer_hosts, allow_loopback=allow,
                   resolver=resolver)

    # --- the URL ---

    def check(self, url: str) -> CheckedUrl:
        """The URL as the HTTP library will read it, or UrlRefused."""
        if _UNSAFE_CHARS.search(url):
            raise UrlRefused(url, "malformed URL (whitespace, control characters or a backslash)")
        try:
            parsed = urllib3.util.parse_url(url)
        except (LocationParseError, ValueError, UnicodeError):
            raise UrlRefused(url, "malformed URL") from None
        scheme = (parsed.scheme or "").lower()
        if parsed.auth is not None or "@" in (parsed.netloc or ""):
            raise UrlRefused(url, "user-info in the URL")
        if scheme != "https" and not (scheme == "http" and self.allow_loopback):
            raise UrlRefused(url, f"scheme {scheme or '(none)'!r} is not https")
        host = (parsed.host or "").strip("[]").rstrip(".").lower()
        if not host:
            raise UrlRefused(url, "no host")
        return CheckedUrl(url, scheme, host, parsed.port or (443 if scheme == "https" else 80))

    def may_carry_token(self, url: str) -> bool:
        """True when the bearer token may go to ``url`` (see the module docstring)."""
        try:
            checked = self.check(url)
        except UrlRefused:
            return False
        if checked.scheme != "https" and not self.allow_loopback:
            return False
        return checked.netloc in self.token_netlocs or self.bearer.match(checked.host, checked.port)

    # --- the address ---

    def address_for(self, host: str, port: int, *, tls: bool) -> str:
        """The one address to connect to: resolved once, every answer checked (UrlRefused)."""
        name = host.strip("[]").rstrip(".")
        addresses = self._resolve(name, port)
        for address in addresses:
            self._judge(name, address, tls)
        return addresses[0]

    def _resolve(self, host: str, port: int) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        try:
            infos = self.resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise socket.gaierror(f"{host} does not resolve ({exc})") from None
        addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
        if not addresses:
            raise socket.gaierror(f"{host} does not resolve")
        return addresses

    def _judge(self, host: str, address: str, tls: bool) -> None:
        ip = ipaddress.ip_address(address)
        loopback = ip.is_loopback or (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None
                                      and ip.ipv4_mapped.is_loopback)
        if loopback and self.allow_loopback:
            return
        if not tls:
            raise UrlRefused(f"http://{host}/", f"plain http to {host} ({address}), which is not loopback")
        if not is_public(address):
            raise UrlRefused(f"https://{host}/", f"{host} resolves to a non-public address {address}")

    # --- the session ---

    def mount(self, session: requests.Session) -> requests.Session:
        """Make every connection ``session`` opens go to a checked address (both schemes)."""
        adapter = PinnedAdapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def session(self) -> requests.Session:
        return self.mount(requests.Session())


def _pinned_socket(conn: HTTPConnection, policy: UrlPolicy, tls: bool) -> socket.socket:
    # urllib3's own _new_conn, with the address chosen (and checked) by the policy.
    address = policy.address_for(conn._dns_host, conn.port or (443 if tls else 80), tls=tls)
    try:
        return urllib3_connection.create_connection(
            (address, conn.port), conn.timeout, source_address=conn.source_address,
            socket_options=conn.socket_options)
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out. "
                                  f"(connect timeout={conn.timeout})") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc


def _pools(policy: UrlPolicy) -> dict[str, type[HTTPConnectionPool]]:
    class PinnedHTTP(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _pinned_socket(self, policy, tls=False)

    class PinnedHTTPS(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _pinned_socket(self, policy, tls=True)

    class PinnedHTTPPool(HTTPConnectionPool):
        ConnectionCls = PinnedHTTP

    class PinnedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = PinnedHTTPS

    return {"http": PinnedHTTPPool, "https": PinnedHTTPSPool}


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only to addresses the policy checked."""

    def __init__(self, policy: UrlPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pools(self.policy)
