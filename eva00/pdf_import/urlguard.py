"""The SSRF guard for links found in PDFs: only https, only allowlisted hosts, no private targets.

It applies the product's one URL policy (``eva00/procore/urlpolicy.py``: the URL parsed as urllib3
parses it, the same public-address rule) with an allowlist of its own on top.

A cover sheet is a document anyone could have edited; its links are attacker-controlled input.
``check_url`` admits a URL only when:

- the scheme is ``https`` and the URL has no user-info, whitespace, control characters or
  backslashes (which parsers disagree about);
- the host is on the allowlist (``EVA00_STORAGE_HOSTS``). An entry is a host name or IP address,
  optionally with ``:port`` (without one only port 443 matches), or ``*.example.com`` for any
  subdomain of example.com;
- every address the host resolves to is public (not private, loopback, link-local, reserved,
  shared, multicast or unspecified, IPv4-mapped forms included), unless the host matched an
  exact allowlist entry: an operator who lists a host by name trusts it wherever it points
  (tests list their loopback storage host this way). Hosts admitted through a wildcard are
  always checked.

The addresses checked are the ones connected to (``SafeUrl.addresses``), so a second DNS answer
cannot swap in a private address between the check and the request. ``probe`` follows redirects
by hand and checks every hop with ``check_url``; it never sends credentials. ``redact`` hides
signatures (``sig``, ``X-Amz-Signature``, ``Signature``, ``token`` ...) before a URL reaches a log.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import urllib3
from urllib3.exceptions import LocationParseError

from eva00.procore.urlpolicy import is_public

Resolver = Callable[..., list[tuple[Any, ...]]]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
EXPIRED_STATUSES = frozenset({401, 403, 410})  # storage refuses a signed URL that ran out
SECRET_PARAMS = ("sig", "signature", "x-amz-signature", "x-amz-security-token", "x-amz-credential",
                 "x-goog-signature", "x-goog-credential", "token", "access_token", "sv_sig")
_SECRET_QUERY = re.compile(r"(?i)(^|[?&;])(" + "|".join(re.escape(p) for p in SECRET_PARAMS) + r")=([^&;#]*)")
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


class UrlRefused(Exception):
    """The URL may not be fetched; ``reason`` says why, ``url`` is already redacted."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason}: {redact(url)}")
        self.url = redact(url)
        self.reason = reason


@dataclass(frozen=True)
class SafeUrl:
    url: str
    host: str  # lowercase, IDNA-encoded, no trailing dot
    port: int
    target: str  # path and query to request
    addresses: tuple[str, ...]  # checked addresses: connect to these, never re-resolve


def redact(url: str) -> str:
    """The URL with signature-like query values replaced and any password hidden."""
    text = _SECRET_QUERY.sub(lambda m: f"{m[1]}{m[2]}=REDACTED", url)
    return re.sub(r"(?<=://)([^/@]*):([^/@]*)@", r"\1:REDACTED@", text)


class Allowlist:
    def __init__(self, entries: Iterable[str]) -> None:
        self.exact: set[tuple[str, int]] = set()
        self.suffixes: set[tuple[str, int]] = set()
        for entry in entries:
            host, port = _split_entry(entry.strip().lower())
            if host.startswith("*."):
                self.suffixes.add((host[1:], port))
            elif host:
                self.exact.add((host, port))

    def match(self, host: str, port: int) -> str | None:
        """'exact', 'wildcard' or None."""
        if (host, port) in self.exact:
            return "exact"
        if any(host.endswith(suffix) and p == port for suffix, p in self.suffixes):
            return "wildcard"
        return None


def _split_entry(entry: str) -> tuple[str, int]:
    if entry.startswith("["):  # [::1]:8443
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 443
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host.rstrip("."), int(port)
    return entry.rstrip("."), 443


def check_url(url: str, allowlist: Allowlist | Iterable[str],
              resolver: Resolver = socket.getaddrinfo) -> SafeUrl:
    """The URL as safe to fetch, or UrlRefused (see the module docstring)."""
    allowed = allowlist if isinstance(allowlist, Allowlist) else Allowlist(allowlist)
    if _UNSAFE_CHARS.search(url):
        raise UrlRefused(url, "malformed URL (whitespace, control characters or backslashes)")
    try:
        # The HTTP library's own parser: the host judged is the host connected to.
        parts = urllib3.util.parse_url(url)
        port = parts.port or 443
        host = (parts.host or "").strip("[]").rstrip(".")
        host = host.encode("idna").decode("ascii").lower() if host else ""
    except (ValueError, UnicodeError, LocationParseError):
        raise UrlRefused(url, "malformed URL") from None
    scheme = (parts.scheme or "").lower()
    if scheme != "https":
        raise UrlRefused(url, f"scheme {scheme or '(none)'!r} is not https")
    if parts.auth is not None or "@" in (parts.netloc or ""):
        raise UrlRefused(url, "credentials in the URL")
    if not host:
        raise UrlRefused(url, "no host")
    how = allowed.match(host, port)
    if how is None:
        raise UrlRefused(url, f"host {host}:{port} is not an allowed storage host")
    addresses = _resolve(url, host, port, resolver)
    if how != "exact":
        for address in addresses:
            if not _is_public(address):
                raise UrlRefused(url, f"host {host} resolves to a non-public address {address}")
    target = parts.request_uri or "/"
    return SafeUrl(url, host, port, target, addresses)


def _resolve(url: str, host: str, port: int, resolver: Resolver) -> tuple[str, ...]:
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(url, f"host {host} does not resolve ({exc})") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not addresses:
        raise UrlRefused(url, f"host {host} does not resolve")
    return addresses


def _is_public(address: str) -> bool:
    return is_public(address)


# --- fetching through the guard ---

@dataclass(frozen=True)
class Probe:
    status: int  # the final hop's HTTP status
    url: str  # the final hop (not redacted: use redact() before logging)
    hops: int

    @property
    def expired(self) -> bool:
        return self.status in EXPIRED_STATUSES

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address checked beforehand, with the certificate checked against the host."""

    def __init__(self, safe: SafeUrl, context: ssl.SSLContext, timeout_s: float) -> None:
        super().__init__(safe.host, safe.port, timeout=timeout_s, context=context)
        self._safe, self._tls = safe, context

    def connect(self) -> None:
        sock = socket.create_connection((self._safe.addresses[0], self._safe.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self._safe.host)


def probe(url: str, allowlist: Allowlist | Iterable[str], *, resolver: Resolver = socket.getaddrinfo,
          context: ssl.SSLContext | None = None, timeout_s: float = 10.0, max_redirects: int = 5,
          clock: Callable[[], float] = time.monotonic) -> Probe:
    """GET the first byte of ``url`` (``Range: bytes=0-0``), following redirects by hand with
    every hop checked. UrlRefused for a refused hop; OSError / ssl.SSLError when unreachable."""
    allowed = allowlist if isinstance(allowlist, Allowlist) else Allowlist(allowlist)
    tls = context or ssl.create_default_context()
    deadline = clock() + timeout_s
    current = url
    for hop in range(max_redirects + 1):
        safe = check_url(current, allowed, resolver)
        status, location = _get_first_byte(safe, tls, max(deadline - clock(), 0.1))
        if status not in REDIRECTS:
            return Probe(status, current, hop)
        if not location:
            return Probe(status, current, hop)
        current = urljoin(current, location)
    raise UrlRefused(current, f"more than {max_redirects} redirects")


def _get_first_byte(safe: SafeUrl, tls: ssl.SSLContext, timeout_s: float) -> tuple[int, str | None]:
    conn = _PinnedHTTPS(safe, tls, timeout_s)
    try:
        conn.request("GET", safe.target, headers={"Range": "bytes=0-0", "User-Agent": "eva00-sync",
                                                  "Accept-Encoding": "identity"})
        response = conn.getresponse()
        response.read(1024)  # a small error body at most; the file itself is the downloader's
        return response.status, response.getheader("Location")
    finally:
        conn.close()
