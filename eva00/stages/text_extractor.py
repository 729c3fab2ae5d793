"""The text-extraction stage: the text of every stored PDF into `file_texts` (full-text indexed).

Delivery guarantee: at least once, with exactly one effect: one INSERT ... ON CONFLICT DO NOTHING
per file in the handler's transaction, so a redelivery changes nothing. A PDF PyMuPDF cannot read
is logged and quarantined (`file_quarantine`, stage 'text') and the stage goes on. A PDF without a
text layer (a scan) gets an empty text row: OCR is the downstream ingestion pipeline's job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pymupdf

from eva00.documents.mupdf import UNREADABLE, Unreadable
from eva00.errors import Poison, Skip
from eva00.messages import Message, StoredFileJob
from eva00.replica import files
from eva00.replica.filestore import FileStore
from eva00.runtime.bus import Delivery, Outgoing

log = logging.getLogger(__name__)

STAGE = "text"
# A tsvector holds at most 1 MB; this much text stays well below that in any language.
MAX_TEXT_CHARS = 400_000


def extract_text(path: Path, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Every page's text in order, at most ``max_chars`` characters, NUL-free for PostgreSQL."""
    parts: list[str] = []
    length = 0
    try:
        with pymupdf.open(path, filetype="pdf") as document:
            for page in document:
                text = str(page.get_text()).replace("\x00", "")
                parts.append(text)
                length += len(text)
                if length >= max_chars:
                    break
    except UNREADABLE as exc:
        raise Unreadable(f"{type(exc).__name__}: {exc}") from None
    return "".join(parts)[:max_chars]


class TextExtractor:
    def __init__(self, store: FileStore, *, max_chars: int = MAX_TEXT_CHARS) -> None:
        self.store = store
        self.max_chars = max_chars

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
                raise Unreadable("the file is missing from storage")
            text = extract_text(path, self.max_chars)
        except Unreadable as exc:
            log.warning("text of %s quarantined: %s", message.sha256, exc)
            files.quarantine(conn, message.sha256, STAGE, str(exc))
            return []
        conn.execute("INSERT INTO file_texts (sha256, text) VALUES (%s, %s) ON CONFLICT (sha256) DO NOTHING",
                     (message.sha256, text))
        return []
