"""The thumbnail stage: a first-page PNG for every stored PDF and a scaled PNG for every photo.

Delivery guarantee: at least once, with exactly one effect. The thumbnail's bytes are stored
content-addressed (FileStore) before one transaction records its files row and the `thumbnails`
link; a redelivery finds the link and does nothing, and rendering the same source again would
give the same bytes anyway. PyMuPDF never runs in this process: each file is rendered by a
sandboxed child (documents/isolated.py) under CPU, memory, wall-clock and pixel limits. A source
that child cannot read or that breaks a limit (corrupt, truncated, not what its type says, a
decompression bomb, a crash) is logged and recorded in `file_quarantine` with the reason, and the
message is acknowledged: one bad file never stops the stage.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import psycopg

from eva00.documents.isolated import DEFAULT_SANDBOX, DocumentSandbox
from eva00.documents.sandbox import ChildUnavailable, SandboxFailed
from eva00.errors import Poison, Retryable, Skip
from eva00.messages import Message, StoredFileJob
from eva00.replica import files
from eva00.replica.filestore import FileStore
from eva00.runtime.bus import Delivery, Outgoing

log = logging.getLogger(__name__)

STAGE = "thumbnails"
VARIANT = "default"


class Thumbnailer:
    def __init__(self, store: FileStore, *, max_px: int = 256, max_source_bytes: int = 512 * 1024 * 1024,
                 sandbox: DocumentSandbox = DEFAULT_SANDBOX) -> None:
        self.store = store
        self.max_px = max_px
        self.max_source_bytes = max_source_bytes  # not worth a child's time
        self.sandbox = sandbox

    def __call__(self, conn: psycopg.Connection, message: Message, delivery: Delivery) -> Sequence[Outgoing]:
        if not isinstance(message, StoredFileJob):
            raise Poison(f"the thumbnailer takes stored files, not {message.TYPE}")
        done = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM thumbnails WHERE source_sha256 = %s AND variant = %s)"
            " OR EXISTS (SELECT 1 FROM file_quarantine WHERE sha256 = %s AND stage = %s)",
            (message.sha256, VARIANT, message.sha256, STAGE)).fetchone()
        if done and done[0]:
            raise Skip(f"{message.sha256[:12]} has its thumbnail already")
        try:
            png = self._render(message)
        except ChildUnavailable as exc:
            raise Retryable(str(exc)) from exc
        except SandboxFailed as exc:
            log.warning("thumbnail of %s (%s) quarantined: %s", message.sha256, message.content_type, exc)
            files.quarantine(conn, message.sha256, STAGE, str(exc))
            return []
        self._store(conn, message.sha256, png)
        return []

    def _render(self, message: StoredFileJob) -> bytes:
        path = self.store.path_for(message.sha256)
        if not path.is_file():
            raise SandboxFailed("the file is missing from storage")
        if path.stat().st_size > self.max_source_bytes:
            raise SandboxFailed(f"larger than {self.max_source_bytes} bytes")
        return self.sandbox.thumbnail(path, message.content_type, self.max_px)

    def _store(self, conn: psycopg.Connection, source_sha256: str, png: bytes) -> None:
        temp, handle = self.store.open_temp()
        with handle:
            handle.write(png)
        stored = self.store.commit_hashed(temp, hashlib.sha256(png).hexdigest(), len(png))
        files.add_file(conn, stored.sha256, stored.size_bytes, "image/png",
                       str(stored.path.relative_to(self.store.root.parent)))
        conn.execute("INSERT INTO thumbnails (source_sha256, variant, thumbnail_sha256) VALUES (%s, %s, %s)"
                     " ON CONFLICT (source_sha256, variant) DO NOTHING",
                     (source_sha256, VARIANT, stored.sha256))
