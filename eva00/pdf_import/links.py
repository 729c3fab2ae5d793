"""Judging a cover sheet's attachment links before anything downloads them.

Each link ends in one state:

- ``refused``: the SSRF guard (`urlguard.py`) refused the URL or a redirect hop;
- ``expired``: the signed URL has run out: its own expiry parameter is in the past
  (``X-Amz-Date`` + ``X-Amz-Expires``, ``Expires``/``expires`` epoch seconds), or storage
  answered 401/403/410 (what storage says to an expired signature). Recorded, not an error:
  a fresh cover sheet export brings fresh links;
- ``unavailable``: storage answered 404 or another final 4xx;
- ``queued``: everything else, handed to the downloader. A link storage could not be asked
  about (5xx, timeout, connection refused) is queued too: the downloader retries with backoff.

Probing asks for one byte (``Range: bytes=0-0``) so a redirect that leaves the allowlist is
caught and reported at import time; ``probe_links=False`` (``--no-probe``) judges offline.
"""

from __future__ import annotations

import calendar
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from eva00.pdf_import.urlguard import Allowlist, Resolver, UrlRefused, check_url, probe, redact


class LinkStatus(str, Enum):
    QUEUED = "queued"
    REFUSED = "refused"
    EXPIRED = "expired"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class LinkVerdict:
    index: int
    name: str
    url: str  # the full URL (a secret: only for the FileJob and the payload)
    status: LinkStatus
    reason: str

    @property
    def redacted_url(self) -> str:
        return redact(self.url)


def judge_links(attachments: Sequence[Mapping[str, Any]], allowlist: Iterable[str], *,
                probe_links: bool = True, resolver: Resolver = socket.getaddrinfo,
                context: ssl.SSLContext | None = None, timeout_s: float = 10.0,
                now: Callable[[], float] = time.time) -> list[LinkVerdict]:
    allowed = Allowlist(allowlist)
    return [_judge(i, str(a.get("name") or ""), str(a["url"]), allowed, probe_links, resolver,
                   context, timeout_s, now())
            for i, a in enumerate(attachments)]


def _judge(index: int, name: str, url: str, allowed: Allowlist, probe_links: bool, resolver: Resolver,
           context: ssl.SSLContext | None, timeout_s: float, now: float) -> LinkVerdict:
    def verdict(status: LinkStatus, reason: str) -> LinkVerdict:
        return LinkVerdict(index, name, url, status, reason)

    try:
        check_url(url, allowed, resolver)
        expires_at = signed_expiry(url)
        if expires_at is not None and expires_at <= now:
            return verdict(LinkStatus.EXPIRED, f"the signature expired at {_iso(expires_at)}")
        if not probe_links:
            return verdict(LinkStatus.QUEUED, "not probed")
        result = probe(url, allowed, resolver=resolver, context=context, timeout_s=timeout_s)
    except UrlRefused as exc:
        return verdict(LinkStatus.REFUSED, exc.reason)
    except (OSError, ssl.SSLError) as exc:  # storage unreachable now: the downloader retries
        return verdict(LinkStatus.QUEUED, f"not verified ({type(exc).__name__})")
    if result.expired:
        return verdict(LinkStatus.EXPIRED, f"storage answered {result.status}")
    if 400 <= result.status < 500 and result.status not in (408, 425, 429):
        return verdict(LinkStatus.UNAVAILABLE, f"storage answered {result.status}")
    return verdict(LinkStatus.QUEUED, f"storage answered {result.status}")


_AMZ_DATE = re.compile(r"^(\d{8})T(\d{6})Z$")


def signed_expiry(url: str) -> float | None:
    """Epoch seconds at which a signed URL stops working, when its query says so."""
    params = {k.lower(): v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    date, ttl = params.get("x-amz-date", ""), params.get("x-amz-expires", "")
    match = _AMZ_DATE.match(date)
    if match and ttl.isdigit():
        signed = time.strptime(match[1] + match[2], "%Y%m%d%H%M%S")
        return calendar.timegm(signed) + int(ttl)
    epoch = params.get("expires", "")
    if epoch.isdigit() and len(epoch) >= 9:
        return float(epoch)
    return None


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
