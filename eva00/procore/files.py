"""Safe file downloads: redirects followed by hand, the bearer token only to Procore's own hosts.

A record's file URL on the API host needs the token and answers with a redirect to signed
storage. Each hop is checked: a hop on a configured Procore host goes through ProcoreClient (rate
limited, authorised); any other host gets no token at all, and only over https unless it is one
of the ``plain_http_hosts`` (the simulator's loopback storage). Bodies stream to disk in chunks;
``offset`` resumes a partial file with a Range request, and a server that ignores the Range
(200 instead of 206) restarts the file from zero. URLs in errors and logs lose their query
strings, which carry signatures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from eva00.procore.errors import ProcoreRequestFailed, ProcoreUnavailable, UnsafeUrl, redact_url
from eva00.procore.http import ProcoreClient, netloc_of
from eva00.procore.limiter import BudgetClass

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Download:
    size_bytes: int
    content_type: str
    hops: int
    resumed: bool  # the body continued the partial file at ``offset``


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int
    total: int | None


def range_header(offset: int) -> dict[str, str]:
    return {"Range": f"bytes={offset}-"} if offset > 0 else {}


def parse_content_range(value: str | None) -> ContentRange | None:
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if not match:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return ContentRange(int(match.group(1)), int(match.group(2)), total)


class SignedUrlExpired(ProcoreRequestFailed):
    """Storage refused the signed URL (expired): re-fetch the record for a fresh one."""


class FileDownloader:
    def __init__(self, client: ProcoreClient, *, session: requests.Session | None = None,
                 plain_http_hosts: frozenset[str] = frozenset(), max_redirects: int = 5,
                 chunk_bytes: int = 256 * 1024) -> None:
        self.client = client
        self.session = session or requests.Session()
        self.plain_http_hosts = frozenset(h.lower() for h in plain_http_hosts)
        self.max_redirects = max_redirects
        self.chunk_bytes = chunk_bytes

    def download(self, url: str, dest: Path, *, budget: BudgetClass | str, offset: int = 0) -> Download:
        """Stream ``url`` into ``dest`` (appending from ``offset`` when the server honours it)."""
        current = url
        for hop in range(self.max_redirects + 1):
            response = self._get(current, budget, offset)
            if response.status_code in REDIRECTS:
                location = response.headers.get("Location")
                response.close()
                if not location:
                    raise ProcoreUnavailable(f"redirect without Location from {redact_url(current)}",
                                             delay_s=5.0)
                current = urljoin(current, location)
                continue
            return self._store(response, current, dest, offset, hop)
        raise UnsafeUrl(f"more than {self.max_redirects} redirects from {redact_url(url)}")

    def _get(self, url: str, budget: BudgetClass | str, offset: int) -> requests.Response:
        if netloc_of(url) in self.client.token_hosts:
            return self.client.request("GET", url, budget=budget, headers=range_header(offset),
                                       stream=True, endpoint="files")
        parts = urlsplit(url)
        if parts.scheme != "https" and (parts.hostname or "").lower() not in self.plain_http_hosts:
            raise UnsafeUrl(f"refusing a non-https file host: {redact_url(url)}")
        try:
            return self.session.get(url, headers=range_header(offset), stream=True, allow_redirects=False,
                                    timeout=self.client.settings.http_timeout_s)
        except requests.RequestException as exc:
            raise ProcoreUnavailable(f"storage unreachable ({type(exc).__name__}): {redact_url(url)}",
                                     delay_s=10.0) from None

    def _store(self, response: requests.Response, url: str, dest: Path, offset: int, hops: int) -> Download:
        with response:
            status = response.status_code
            if status == 416 and offset > 0:
                return Download(offset, response.headers.get("Content-Type", ""), hops, True)
            if status in (401, 403) and netloc_of(url) not in self.client.token_hosts:
                raise SignedUrlExpired(f"storage answered {status} for {redact_url(url)}", status=status,
                                       endpoint="storage")
            if status >= 500:
                raise ProcoreUnavailable(f"storage answered {status} for {redact_url(url)}", delay_s=10.0,
                                         status=status, endpoint="storage")
            if status not in (200, 206):
                raise ProcoreRequestFailed(f"file answered {status}: {redact_url(url)}", status=status,
                                           endpoint="files")
            resumed = status == 206 and offset > 0
            if resumed:
                content_range = parse_content_range(response.headers.get("Content-Range"))
                if content_range is None or content_range.start != offset:
                    raise ProcoreUnavailable(f"unexpected Content-Range from {redact_url(url)}", delay_s=5.0)
            size = self._write(response, dest, offset if resumed else 0)
            return Download(size, response.headers.get("Content-Type", ""), hops, resumed)

    def _write(self, response: requests.Response, dest: Path, start: int) -> int:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("r+b" if start and dest.exists() else "wb") as out:
            out.seek(start)
            out.truncate()
            try:
                for chunk in response.iter_content(self.chunk_bytes):
                    out.write(chunk)
            except requests.RequestException as exc:
                raise ProcoreUnavailable(f"download interrupted ({type(exc).__name__})",
                                         delay_s=5.0) from None
            return out.tell()
