"""Is this delivery from our Procore hook? The Authorization value, and optionally an HMAC.

Procore sends the ``Authorization`` value configured on the hook verbatim (no signature, no
timestamp). It is compared in constant time with every accepted secret: the configured ones
(EVA00_WEBHOOK_SECRETS) and those `eva00 webhooks register` generated into the secrets file (the
current one and, after a rotation, the previous one), so a rotation never rejects a delivery in
flight. Both sides are hashed first so the comparison takes the same time whatever the lengths,
and every secret is compared (no early exit), so timing reveals neither a prefix nor which secret
matched. The value must match exactly: no case folding, no prefix ("Bearer ") stripping.
(Whitespace around a header value is not part of it in HTTP, RFC 9110 5.5; the server drops it.)

Where a deployment puts a signing proxy in front (the seed's design), EVA00_WEBHOOK_HMAC_SECRET
makes the ``X-Procore-Signature`` header mandatory too: ``sha256=<hex>`` (or bare hex) of
HMAC-SHA256 over the raw body. Nothing here logs or returns a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

SIGNATURE_HEADER = "X-Procore-Signature"
SIGNATURE_ENVIRON = "HTTP_X_PROCORE_SIGNATURE"
SECRET_BYTES = 32  # 256 bits, urlsafe base64: 43 characters


def _digest(value: str | bytes) -> bytes:
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return hashlib.sha256(data).digest()


def matches_any(given: str, accepted: Iterable[str]) -> bool:
    """Constant-time: compares with every accepted value, whatever matched first."""
    given_digest = _digest(given)
    found = False
    for secret in accepted:
        found |= hmac.compare_digest(given_digest, _digest(secret))
    return found


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    value = header[7:] if header.startswith("sha256=") else header
    expected = sign(secret, body)[7:]
    return hmac.compare_digest(_digest(value.lower()), _digest(expected))


def generate_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


class SecretFile:
    """The secrets `register` generated: one a line, the current (sent to Procore) first.

    Read again when it changes (checked at most once per ``recheck_s``), so a registration or a
    rotation takes effect in a running listener without a restart.
    """

    KEEP = 2  # the current secret and the one before it (deliveries retried with the old header)

    def __init__(self, path: Path, *, recheck_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.recheck_s = recheck_s
        self.clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._secrets: tuple[str, ...] = ()
        self._next_check = 0.0

    def read(self, *, fresh: bool = False) -> tuple[str, ...]:
        with self._lock:
            now = self.clock()
            if fresh or now >= self._next_check:
                self._next_check = now + self.recheck_s
                self._reload()
            return self._secrets

    def _reload(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._secrets = None, ()
            return
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            lines = self.path.read_text().splitlines()
            self._secrets = tuple(line.strip() for line in lines if line.strip())
            self._stamp = stamp

    def current(self) -> str | None:
        found = self.read(fresh=True)
        return found[0] if found else None

    def rotate(self, new_secret: str) -> None:
        """Make new_secret current, keeping the previous current one accepted."""
        kept = [s for s in self.read(fresh=True) if s != new_secret][: self.KEEP - 1]
        self._write([new_secret, *kept])

    def _write(self, values: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write("".join(value + "\n" for value in values))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


class Authenticator:
    def __init__(self, configured: Iterable[str], secret_file: SecretFile | None,
                 hmac_secret: str = "") -> None:
        self.configured = tuple(s for s in configured if s)
        self.secret_file = secret_file
        self.hmac_secret = hmac_secret

    def accepted(self) -> tuple[str, ...]:
        stored = self.secret_file.read() if self.secret_file else ()
        return (*self.configured, *stored)

    @property
    def has_secrets(self) -> bool:
        return bool(self.accepted())

    def authorization_valid(self, header: str | None) -> bool:
        accepted = self.accepted()
        if header is None or not accepted:
            return False
        return matches_any(header, accepted)

    def body_valid(self, body: bytes, signature: str | None) -> bool:
        return not self.hmac_secret or signature_valid(self.hmac_secret, body, signature)
