"""The storage host: signed, expiring blob URLs with Range, If-Range, strong ETags and HEAD; and the
file host's redirect to it (``file_redirect``).

It refuses any request that carries an Authorization header (400, S3's InvalidArgument), and the
ledger counts it as a token leak: a client must never send its Procore token here. Errors use S3's
XML shape. Bodies stream from the blob generator, so a gigabyte costs no memory.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from eva00.simulator.blobs import Blob, sign
from eva00.simulator.web import Request, Response

if TYPE_CHECKING:
    from eva00.simulator.state import SimState

BLOB_PATH = re.compile(r"/blobs/(\d+)\Z")
RANGE = re.compile(r"bytes=(\d*)-(\d*)\Z")
XML = "application/xml"


def s3_error(status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>eva00sim</RequestId></Error>").encode()
    return Response(status, body, list(headers or []), content_type=XML)


def handle(sim: SimState, req: Request) -> Response:
    if req.header("Authorization") is not None:
        return s3_error(400, "InvalidArgument", "Only one auth mechanism allowed; only the signature query "
                        "parameters or the Authorization header should be specified (this host never takes "
                        "a Procore token)")
    match = BLOB_PATH.match(req.path)
    if match is None:
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")
    if req.method not in ("GET", "HEAD"):
        return s3_error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.",
                        [("Allow", "GET, HEAD")])
    file_id = int(match.group(1))
    refused = _check_signature(sim, file_id, req)
    if refused is not None:
        return refused
    blob = sim.blobs.get(file_id)
    if blob is None:
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")
    fault = sim.faults.pick("storage", req.path, frozenset({"5xx", "503", "reset", "slow", "etag_change"}))
    if fault is not None:
        req.meta["fault"] = fault.mode
        if fault.mode == "5xx":
            return s3_error(500, "InternalError", "We encountered an internal error. Please try again.")
        if fault.mode == "503":
            return s3_error(503, "SlowDown", "Please reduce your request rate.",
                            [("Retry-After", str(int(fault.retry_after_s)))])
        if fault.mode == "reset":
            return Response(0, action="reset")
        if fault.mode == "slow":
            time.sleep(fault.delay_s)
        if fault.mode == "etag_change":
            sim.blobs.bump_generation(file_id)
    return serve_blob(sim, req, blob)


FILE_PATH = re.compile(r"/rest/v1\.0/files/(\d+)/download\Z")


def file_redirect(sim: SimState, req: Request) -> Response:
    """The file host's answer to an authorised request: 302 to a freshly signed storage URL."""
    match = FILE_PATH.match(req.path)
    blob = sim.blobs.get(int(match.group(1))) if match else None
    if blob is None:
        return Response(404, b'{"errors":"File not found"}')
    if req.method not in ("GET", "HEAD"):
        return Response(405, b'{"errors":"Method not allowed"}', [("Allow", "GET, HEAD")])
    return Response(302, b"", [("Location", sim.signed_url(blob.file_id)), ("Cache-Control", "no-store")])


def _check_signature(sim: SimState, file_id: int, req: Request) -> Response | None:
    expires_text, signature = req.q("expires"), req.q("sig")
    if not expires_text or not signature or not expires_text.isdigit():
        return s3_error(403, "AccessDenied", "Query-string authentication requires the expires and sig "
                                             "parameters")
    if not hmac.compare_digest(signature, sign(sim.sign_key, file_id, int(expires_text))):
        return s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match "
                                                      "the signature you provided.")
    if int(expires_text) < sim.now():  # the storage host's clock, skewed like the API's
        return s3_error(403, "AccessDenied", "Request has expired")
    return None


def serve_blob(sim: SimState, req: Request, blob: Blob) -> Response:
    size = blob.size
    headers = [("ETag", blob.etag), ("Accept-Ranges", "bytes"), ("Last-Modified", sim.last_modified),
               ("Content-Disposition", f'attachment; filename="{blob.filename}"')]
    wanted = req.header("Range")
    if_range = req.header("If-Range")
    fault = sim.faults.pick("storage", req.path, frozenset({"ignore_range", "wrong_length", "truncate",
                                                            "endless", "drip"}))
    if fault is not None:
        req.meta["fault"] = fault.mode
    if fault is not None and fault.mode == "ignore_range":
        wanted = None
    if wanted is not None and if_range is not None and if_range.strip() != blob.etag:
        wanted = None  # the representation changed (or a date validator): the whole thing
    start, end, status = 0, size, 200
    if wanted is not None:
        parsed = parse_range(wanted, size)
        if isinstance(parsed, str):
            return s3_error(416, "InvalidRange", "The requested range is not satisfiable",
                            [("Content-Range", f"bytes */{size}"), *headers[:2]])
        if parsed is not None:
            start, end = parsed
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
    response = Response(status, blob.read(start, end), headers, content_type=blob.content_type,
                        length=end - start)
    if fault is not None and fault.mode == "endless":
        response.body, response.length = _endless(blob), -1
    elif fault is not None and fault.mode == "drip":
        response.body = _drip(blob.read(start, end), fault.delay_s)
    if fault is not None and fault.mode == "wrong_length":
        response.length, response.action = end - start + 1024, "close"
    elif fault is not None and fault.mode == "truncate":
        response.action = "truncate"
    return response


DRIP_BYTES = 64


def _endless(blob: Blob) -> Iterator[bytes | memoryview]:
    """The blob's bytes over and over, for ever (until the client hangs up)."""
    while True:
        yield from blob.read(0, blob.size or 1)


def _drip(pieces: Iterable[bytes | memoryview], delay_s: float) -> Iterator[bytes]:
    for piece in pieces:
        data = bytes(piece)
        for offset in range(0, len(data), DRIP_BYTES):
            time.sleep(delay_s)
            yield data[offset:offset + DRIP_BYTES]


def parse_range(text: str, size: int) -> tuple[int, int] | str | None:
    """One byte range -> (start, end exclusive); "unsatisfiable"; None to ignore (several ranges
    or a syntax error, which RFC 9110 says to answer with the whole representation)."""
    match = RANGE.match(text.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end
