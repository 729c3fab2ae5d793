"""Messages of the file stages: a stored file announced to the thumbnailer and the text extractor.

Registered with eva00.messages like the pipeline's own messages; they carry a hash and a content
type, never bytes or paths (the path follows from the hash: FileStore.path_for).
"""

from __future__ import annotations

import dataclasses

from eva00.messages import Message, message


@message("stored_file", version=1)
@dataclasses.dataclass(frozen=True)
class StoredFileJob(Message):
    """A file now in content-addressed storage, for a stage that derives something from it."""

    sha256: str
    content_type: str
    size_bytes: int
