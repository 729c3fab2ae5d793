"""What the stages call: a thumbnail or a PDF's text, made by the sandboxed worker (`worker.py`).

Nothing here imports PyMuPDF, so a stage that uses only this module never loads MuPDF into its
own, long-lived process. Every refusal (unreadable, too many pixels, a limit hit, a crash) is
``SandboxFailed`` with one line naming the reason; ``ChildUnavailable`` means no child could be
started (the machine's fault: try again later).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eva00.config import Settings
from eva00.documents.sandbox import MIB, Limits, SandboxFailed, Work, run_in_child, worker_command

WORKER = worker_command("eva00.documents.worker")
RENDERING = Work("rendering the thumbnail", "the renderer")
EXTRACTING = Work("text extraction", "the text extractor")

# PyMuPDF's file types by our content types (a file in storage has no extension to guess from).
FILETYPES = {"application/pdf": "pdf", "image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif",
             "image/tiff": "tiff", "image/bmp": "bmp"}


@dataclass(frozen=True)
class DocumentSandbox:
    """The limits every untrusted document is opened under (defaults: production's, as Settings')."""

    limits: Limits = Limits(cpu_s=60, wall_s=120.0, memory_bytes=1024 * MIB)
    max_pixels: int = 100_000_000
    worker: Sequence[str] = field(default=WORKER)

    @classmethod
    def from_settings(cls, settings: Settings) -> DocumentSandbox:
        return cls(Limits(cpu_s=settings.document_sandbox_cpu_s, wall_s=settings.document_sandbox_timeout_s,
                          memory_bytes=settings.document_sandbox_memory_bytes),
                   max_pixels=settings.image_max_pixels)

    def thumbnail(self, path: Path, content_type: str, max_px: int) -> bytes:
        """PNG bytes of the first page (or the image), longer side ``max_px``; or SandboxFailed."""
        filetype = FILETYPES.get(content_type)
        if filetype is None:
            raise SandboxFailed(f"no thumbnail for {content_type!r}")
        args = ["thumbnail", str(path), "--filetype", filetype, "--max-px", str(max_px),
                "--max-pixels", str(self.max_pixels)]
        png = _field(run_in_child(self.worker, args, self.limits, RENDERING), "png", RENDERING)
        try:
            return base64.b64decode(png, validate=True)
        except ValueError:
            raise SandboxFailed(f"{RENDERING.actor} answered with a thumbnail that is not base64") from None

    def text(self, path: Path, max_chars: int) -> str:
        """Every page's text, at most ``max_chars`` characters; or SandboxFailed."""
        args = ["text", str(path), "--max-chars", str(max_chars)]
        text = _field(run_in_child(self.worker, args, self.limits, EXTRACTING), "text", EXTRACTING)
        return text[:max_chars]


# Production's limits, for a stage built without settings (tests, the proof harness).
DEFAULT_SANDBOX = DocumentSandbox()


def _field(result: dict[str, Any], name: str, work: Work) -> str:
    # The child is not trusted either: a MuPDF bug may have left it answering nonsense.
    value = result.get(name)
    if not isinstance(value, str):
        raise SandboxFailed(f"{work.actor} answered without its {name}")
    return value
