"""The text-extraction stage: the text of every stored PDF into `file_texts` (full-text indexed).

Delivery guarantee: at least once, with exactly one effect: one INSERT ... ON CONFLICT DO NOTHING
per file in the handler's transaction, so a redelivery changes nothing. PyMuPDF never runs in this
process: each PDF is read by a sandboxed child (documents/isolated.py) under CPU, memory and
wall-clock limits. A PDF that child cannot read or that breaks a limit (a looping or enormous
file, a crash) is logged and quarantined (`file_quarantine`, stage 'text', with the reason) and
the stage goes on. A PDF without a text layer (a scan) gets an empty text row: OCR is the
downstream ingestion pipeline's job.
"""

from __future__ import annotations

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

STAGE = "text"
# A tsvector holds at most 1 MB; this much text stays well below that in any language.
MAX_TEXT_CHARS = 400_000


class TextExtractor:
    def __init__(self, store: FileStore, *, max_chars: int = MAX_TEXT_CHARS,
                 sandbox: DocumentSandbox = DEFAULT_SANDBOX) -> None:
        self.store = store
        self.max_chars = max_chars
        self.sandbox = sandbox

    def __call__(self, conn: psycopg.Connection, message: Message, delivery: Delivery) -> Sequence[Outgoing]:
        if not isinstance(message, StoredFileJob):
            raise Poison(f"the text extractor takes stored files, not {message.TYPE}")
        if message.content_type != "application/pdf":
            raise Skip(f"{message.sha256[:12]} is {message.content_type}, not a PDF")
        done = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM file_texts WHERE sha256 = %s)"
            " OR EXISTS (SELECT 1 FROM file_quarantine WHERE sha256 = %s AND stage = %s)",
            (message.sha256, message.sha256, STAGE)).fetchone()
        if done and done[0]:
            raise Skip(f"{message.sha256[:12]} has its text already")
        path = self.store.path_for(message.sha256)
        try:
            if not path.is_file():
                raise SandboxFailed("the file is missing from storage")
            text = self.sandbox.text(path, self.max_chars)
        except ChildUnavailable as exc:
            raise Retryable(str(exc)) from exc
        except SandboxFailed as exc:
            log.warning("text of %s quarantined: %s", message.sha256, exc)
            files.quarantine(conn, message.sha256, STAGE, str(exc))
            return []
        conn.execute("INSERT INTO file_texts (sha256, text) VALUES (%s, %s) ON CONFLICT (sha256) DO NOTHING",
                     (message.sha256, text))
        return []
