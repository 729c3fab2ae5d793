"""The one download path: redirects followed by hand (the token only ever goes where the URL policy
allows), resume with Range + If-Range from a stable temp file, SHA-256 computed while writing, the
limits of one download, and the verdicts the downloader stage acts on (a failed attempt, an unusable
link, a start-over).

A record's file URL on a Procore host needs the token and answers with a redirect to signed
storage. Each hop is judged by the URL policy (urlpolicy.py) before it is requested: a malformed
URL, user-info, a backslash or a non-https scheme ends the download; a hop that may carry the token
goes through ProcoreClient (rate limited, authorised); any other host gets no token at all. Every
connection goes to an address the policy checked (no private, loopback or link-local targets). A
download stops at ``DownloadLimits``: its size, its overall deadline and a minimum rate over a
window (a slow drip), and free disk is re-checked while it is written. URLs in errors and logs lose
their query strings, which carry signatures. Where the bytes go is the caller's: ``TempFiles`` names
the temp file of a download (the replica's FileStore is one), so this client knows nothing of storage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast
from urllib.parse import urljoin

import requests
import urllib3

from eva00.config import Settings
from eva00.procore.errors import ProcoreRequestFailed, UnsafeUrl, redact_url
from eva00.procore.http import ProcoreClient
from eva00.procore.urlpolicy import UrlRefused, shown

log = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int
    total: int | None


def parse_content_range(value: str | None) -> ContentRange | None:
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    start, end, total = match.groups()
    return ContentRange(int(start), int(end), None if total == "*" else int(total))


class SignedUrlExpired(ProcoreRequestFailed):
    """Storage refused a signed URL (401/403): re-resolve it through the API link."""


class TempFiles(Protocol):
    """Where a download's bytes go while they arrive (the replica's FileStore is one)."""

    def temp_path(self, name: str) -> Path: ...


# --- one transfer: redirects by hand, resume with Range + If-Range, SHA-256 while writing ---

class TransferFailed(Exception):
    """This attempt failed (interrupted, a lying header, 5xx): counted; the temp file is kept."""


class LinkUnusable(Exception):
    """The link can never work as it is (gone, expired after re-resolving, an unsafe redirect).
    ``expired``: a newer URL from a re-fetched record may work; otherwise the link has failed."""

    def __init__(self, message: str, *, expired: bool) -> None:
        super().__init__(message)
        self.expired = expired


class LimitExceeded(LinkUnusable):
    """The file broke a download limit (too large, too slow, past its deadline): it fails for good
    with the reason, and the caller raises an alert."""

    def __init__(self, message: str) -> None:
        super().__init__(message, expired=False)


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int = 10 * 1024**3
    deadline_s: float = 6 * 3600.0  # one attempt, redirects included
    min_rate_bytes_s: int = 16 * 1024  # over each rate window
    rate_window_s: float = 60.0
    space_check_bytes: int = 64 * 1024**2  # free disk is checked again after this many bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadLimits:
        return cls(max_bytes=settings.download_max_bytes, deadline_s=settings.download_deadline_s,
                   min_rate_bytes_s=settings.download_min_rate_bytes_s,
                   rate_window_s=settings.download_rate_window_s)


class _Pace:
    """Where one attempt stands against its limits; ``add`` raises LimitExceeded."""

    def __init__(self, limits: DownloadLimits, deadline_at: float, monotonic: Callable[[], float],
                 check_space: Callable[[], None]) -> None:
        self.limits, self.deadline_at, self.monotonic = limits, deadline_at, monotonic
        self.check_space = check_space
        self.window_start = monotonic()
        self.window_bytes = 0
        self.unchecked_bytes = 0

    def add(self, size_bytes: int, total_bytes: int, url: str) -> None:
        now = self.monotonic()
        if total_bytes > self.limits.max_bytes:
            raise LimitExceeded(f"the file is larger than {self.limits.max_bytes} bytes "
                                f"(EVA00_DOWNLOAD_MAX_BYTES): {redact_url(url)}")
        if now > self.deadline_at:
            raise LimitExceeded(f"the download passed its deadline of {self.limits.deadline_s:.0f} s "
                                f"(EVA00_DOWNLOAD_DEADLINE_S): {redact_url(url)}")
        self.window_bytes += size_bytes
        elapsed = now - self.window_start
        if elapsed >= self.limits.rate_window_s:
            rate = self.window_bytes / elapsed
            if rate < self.limits.min_rate_bytes_s:
                raise LimitExceeded(f"the download ran at {rate:.0f} bytes/s, below the minimum of "
                                    f"{self.limits.min_rate_bytes_s} (EVA00_DOWNLOAD_MIN_RATE_BYTES_S): "
                                    f"{redact_url(url)}")
            self.window_start, self.window_bytes = now, 0
        self.unchecked_bytes += size_bytes
        if self.unchecked_bytes >= self.limits.space_check_bytes:
            self.unchecked_bytes = 0
            self.check_space()


class _StartOver(Exception):
    """The partial file belongs to another representation: restart from byte 0."""


@dataclass(frozen=True)
class Fetched:
    name: str
    temp: Path
    sha256: str
    size_bytes: int
    content_type: str
    resumed_from: int  # bytes kept from an earlier attempt


@dataclass(frozen=True)
class Partial:
    """What a resume needs, kept next to the temp file: the validator and the last signed URL
    (reusing it saves a rate-limited API call; when it has expired the API link re-resolves)."""

    etag: str
    storage_url: str


def _open_binary(path: Path, mode: str) -> BinaryIO:
    return cast(BinaryIO, path.open(mode))


class Transfer:
    def __init__(self, client: ProcoreClient, store: TempFiles, *, session: requests.Session | None = None,
                 limits: DownloadLimits | None = None, check_space: Callable[[], None] = lambda: None,
                 chunk_bytes: int = 1 << 20, max_redirects: int = 5,
                 opener: Callable[[Path, str], BinaryIO] = _open_binary,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.client, self.store = client, store
        self.policy = client.policy
        self.opener = opener  # how temp files are opened (tests inject a full disk)
        self.session = self.policy.mount(session or requests.Session())
        self.limits = limits or DownloadLimits.from_settings(client.settings)
        self.check_space = check_space  # raises when free disk runs low while a file is written
        self.chunk_bytes, self.max_redirects = chunk_bytes, max_redirects
        self.monotonic = monotonic

    def fetch(self, url: str, name: str, *, budget: str, renew: Callable[[], None] = lambda: None) -> Fetched:
        """Download ``url`` into the temp file ``name`` (alphanumeric, ours), resuming it if a
        validator was kept; raises TransferFailed or LinkUnusable."""
        partial = self._load(name)
        fresh = partial is None or not partial.storage_url
        deadline_at = self.monotonic() + self.limits.deadline_s
        for _round in range(4):
            start_url = url if fresh or partial is None else partial.storage_url
            pace = _Pace(self.limits, deadline_at, self.monotonic, self.check_space)
            try:
                return self._once(start_url, name, partial, budget, renew, pace)
            except SignedUrlExpired:
                if fresh:
                    raise LinkUnusable(f"storage refused a freshly signed URL for {redact_url(url)}",
                                       expired=True) from None
                log.info("signed URL of %s expired: re-resolving through %s", name, redact_url(url))
                fresh = True
            except _StartOver:
                partial = None
                self.forget(name, drop_temp=True)
            except UrlRefused as exc:
                raise LinkUnusable(str(exc), expired=False) from None
            except ProcoreRequestFailed as exc:
                if exc.status in (403, 404, 410):
                    raise LinkUnusable(f"the link answered {exc.status}: {redact_url(url)}",
                                       expired=True) from None
                if isinstance(exc, UnsafeUrl):
                    raise LinkUnusable(str(exc), expired=False) from None
                raise TransferFailed(str(exc)) from None
        raise TransferFailed(f"{redact_url(url)} kept changing while it was downloaded")

    def forget(self, name: str, *, drop_temp: bool = False) -> None:
        self._state_path(name).unlink(missing_ok=True)
        if drop_temp:
            self._temp_path(name).unlink(missing_ok=True)

    # --- one request ---

    def _once(self, url: str, name: str, partial: Partial | None, budget: str,
              renew: Callable[[], None], pace: _Pace) -> Fetched:
        temp = self._temp_path(name)
        offset = temp.stat().st_size if partial is not None and temp.exists() else 0
        headers = {"Range": f"bytes={offset}-", "If-Range": partial.etag} if partial and offset else {}
        response, final_url = self._open(url, headers, budget)
        with response:
            status = response.status_code
            if status == 416 and partial is not None and offset:
                return self._already_complete(response, name, partial, offset)
            self._check(status, final_url)
            whole = self._range_of(response, offset) if status == 206 else None
            start = offset if whole is not None else 0
            total = _int(response.headers.get("Content-Length"))
            pace.add(0, start + (total or 0), final_url)
            etag = response.headers.get("ETag", "")
            if etag and not etag.startswith("W/"):
                self._save(name, Partial(etag, final_url if self._is_storage(final_url) else ""))
            else:
                self.forget(name)
            sha256, size = self._write(response, temp, start, renew, pace, final_url)
        if total is not None and size - start != total:
            raise TransferFailed(f"the body had {size - start} bytes, Content-Length said {total}")
        if whole is not None and whole.total is not None and size != whole.total:
            raise TransferFailed(f"the file has {size} bytes, Content-Range said {whole.total}")
        return Fetched(name, temp, sha256, size, _media_type(response), start)

    def _open(self, url: str, headers: dict[str, str], budget: str) -> tuple[requests.Response, str]:
        current = url
        for _hop in range(self.max_redirects + 1):
            self.policy.check(current)  # every hop: UrlRefused ends the download
            if self.policy.may_carry_token(current):
                response = self.client.request("GET", current, budget=budget, headers=headers, stream=True,
                                               endpoint="files")
            else:
                response = self._storage_get(current, headers)
            if response.status_code not in REDIRECTS:
                return response, current
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise TransferFailed(f"redirect without Location from {redact_url(current)}")
            current = urljoin(current, location)
        raise LinkUnusable(f"more than {self.max_redirects} redirects from {redact_url(url)}", expired=False)

    def _storage_get(self, url: str, headers: dict[str, str]) -> requests.Response:
        try:
            # No Authorization here, ever: the token belongs to the bearer hosts alone.
            return self.session.get(url, headers=headers, stream=True, allow_redirects=False,
                                    timeout=self.client.settings.http_timeout_s)
        except requests.RequestException as exc:
            raise TransferFailed(f"storage unreachable ({type(exc).__name__}): {shown(url)}") from None

    def _is_storage(self, url: str) -> bool:
        return not self.policy.may_carry_token(url)

    def _check(self, status: int, url: str) -> None:
        if status in (200, 206):
            return
        if status in (401, 403) and self._is_storage(url):
            raise SignedUrlExpired(f"storage answered {status} for {redact_url(url)}", status=status,
                                   endpoint="storage")
        if status in (404, 410):
            raise LinkUnusable(f"storage answered {status}: {redact_url(url)}", expired=True)
        raise TransferFailed(f"the file answered {status}: {redact_url(url)}")

    @staticmethod
    def _range_of(response: requests.Response, offset: int) -> ContentRange:
        content_range = parse_content_range(response.headers.get("Content-Range"))
        if content_range is None or offset == 0 or content_range.start != offset:
            raise TransferFailed(f"asked for bytes from {offset}, got Content-Range "
                                 f"{response.headers.get('Content-Range')!r}")
        return content_range

    def _already_complete(self, response: requests.Response, name: str, partial: Partial,
                          offset: int) -> Fetched:
        """416 to ``bytes=N-``: complete when the same representation is exactly N bytes long."""
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        if response.headers.get("ETag", "") != partial.etag or total != str(offset):
            raise _StartOver()
        temp = self._temp_path(name)
        sha256, size = self._write(None, temp, offset, lambda: None, None, "")
        return Fetched(name, temp, sha256, size, _media_type(response, fallback=""), offset)

    def _write(self, response: requests.Response | None, temp: Path, start: int,
               renew: Callable[[], None], pace: _Pace | None, url: str) -> tuple[str, int]:
        digest = hashlib.sha256()
        with self.opener(temp, "r+b" if temp.exists() else "w+b") as out:
            _hash_prefix(out, start, digest, self.chunk_bytes)
            out.seek(start)
            out.truncate()
            if response is not None and pace is not None:
                with _BackgroundHash(digest) as hashing:
                    for chunk in self._chunks(response, pace, start, url, renew):
                        out.write(chunk)  # ENOSPC propagates as OSError: the disk guard's business
                        hashing.update(chunk)
            return digest.hexdigest(), out.tell()

    def _chunks(self, response: requests.Response, pace: _Pace, start: int, url: str,
                renew: Callable[[], None]) -> Iterator[bytes]:
        """The body in pieces of about ``chunk_bytes``, each socket read judged against the limits
        (read1 returns after one read, so a slow drip is measured as it drips)."""
        buffered: list[bytes] = []
        buffered_bytes, total = 0, start
        while True:
            try:
                # Raw bytes as stored (no Content-Encoding decoding): lengths and hashes are the file's.
                piece = response.raw.read1(self.chunk_bytes, decode_content=False)
            except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError) as exc:
                raise TransferFailed(f"download interrupted ({type(exc).__name__})") from None
            total += len(piece)
            pace.add(len(piece), total, url)
            renew()
            if piece:
                buffered.append(piece)
                buffered_bytes += len(piece)
            if buffered and (not piece or buffered_bytes >= self.chunk_bytes):
                yield b"".join(buffered)
                buffered, buffered_bytes = [], 0
            if not piece:
                return

    # --- resume state ---

    def _temp_path(self, name: str) -> Path:
        return self.store.temp_path(name)

    def _state_path(self, name: str) -> Path:
        temp = self._temp_path(name)
        return temp.with_name(f"{temp.name}.json")

    def _load(self, name: str) -> Partial | None:
        try:
            data = json.loads(self._state_path(name).read_text())
            return Partial(str(data["etag"]), str(data.get("storage_url", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save(self, name: str, partial: Partial) -> None:
        path = self._state_path(name)
        scratch = path.with_name(path.name + ".new")
        scratch.write_text(json.dumps({"etag": partial.etag, "storage_url": partial.storage_url}))
        os.replace(scratch, path)


def _hash_prefix(handle: BinaryIO, length: int, digest: Any, chunk_bytes: int) -> None:
    """A resume continues the hash over the bytes kept from before (a local read)."""
    handle.seek(0)
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(chunk_bytes, remaining))
        if not chunk:
            raise _StartOver()
        digest.update(chunk)
        remaining -= len(chunk)


class _BackgroundHash:
    """SHA-256 of the received chunks on a thread of its own, in order.

    hashlib lets go of the GIL on large buffers, so hashing one chunk overlaps with receiving and
    writing the next instead of adding to them (about 20 % faster for a large file on two cores).
    At most ``depth`` chunks wait, which bounds the memory it adds.
    The digest is complete when the block exits normally."""

    def __init__(self, digest: Any, depth: int = 4) -> None:
        self._digest = digest
        self._depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._waiting: deque[Future[None]] = deque()

    def update(self, chunk: bytes) -> None:
        while len(self._waiting) >= self._depth:
            self._waiting.popleft().result()
        self._waiting.append(self._pool.submit(self._digest.update, chunk))

    def __enter__(self) -> _BackgroundHash:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                while self._waiting:
                    self._waiting.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _media_type(response: requests.Response, fallback: str = "") -> str:
    value = response.headers.get("Content-Type", fallback).split(";", 1)[0].strip().lower()
    return "" if value in ("", "application/octet-stream", "binary/octet-stream") else value
