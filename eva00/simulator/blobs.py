"""Deterministic files of any size: valid PDF, JPEG and PNG, generated block by block.

A file is a small real document (a one-page PDF, a 16x16 PNG or JPEG) padded to its size with
bytes from a fixed pool of random blocks, placed where every reader skips them: a PDF stream
object the page never references, PNG ancillary chunks (``evAd``, each with its own CRC) before
IEND, JPEG COM segments after SOI. Every byte at any offset is computed from (file id,
generation, offset) without the bytes before it, so a Range request costs what it returns and a
gigabyte streams in constant memory. ``generation`` changes a file's content (the storage fault
"etag_change"); the ETag names it.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import xxhash

POOL_BLOCK_BYTES = 64 * 1024
POOL_BLOCKS = 64
UNIT_DATA = 65000  # data bytes per PNG chunk / JPEG COM segment (a COM holds at most 65533)
EXACT_FROM_BYTES = 4096
CONTENT_TYPES = {"pdf": "application/pdf", "jpeg": "image/jpeg", "png": "image/png"}
EXTENSIONS = {"pdf": "pdf", "jpeg": "jpg", "png": "png"}


@lru_cache(maxsize=1)
def _pool() -> tuple[bytes, ...]:
    rng = random.Random(0xE7A00)
    return tuple(rng.randbytes(POOL_BLOCK_BYTES) for _ in range(POOL_BLOCKS))


def _pool_slice(seed: int, index: int, length: int) -> memoryview:
    block = _pool()[(seed * 7 + index * 13 + (seed >> 7)) % POOL_BLOCKS]
    return memoryview(block)[:length]


@dataclass(frozen=True)
class Layout:
    """prefix + units + suffix; unit i is ``unit_bytes`` long except possibly the last one."""

    prefix: bytes
    suffix: bytes
    unit_count: int
    unit_bytes: int
    last_unit_bytes: int

    @property
    def size(self) -> int:
        units = 0 if self.unit_count == 0 else (self.unit_count - 1) * self.unit_bytes + self.last_unit_bytes
        return len(self.prefix) + units + len(self.suffix)


@dataclass
class Blob:
    file_id: int
    fmt: str  # pdf | jpeg | png
    target_bytes: int
    title: str
    generation: int = 0

    @property
    def seed(self) -> int:
        return self.file_id * 31 + self.generation * 1_000_003

    def layout(self) -> Layout:
        cached = self.__dict__.get("_layout")
        if cached is None or cached[0] != self.generation:
            cached = (self.generation, _layout(self.fmt, self.target_bytes, self.title, self.seed))
            self.__dict__["_layout"] = cached
        return cached[1]

    @property
    def size(self) -> int:
        # Layouts fill the target exactly once it exceeds the fixed parts (well under 4 KiB).
        return self.target_bytes if self.target_bytes >= EXACT_FROM_BYTES else self.layout().size

    @property
    def etag(self) -> str:
        key = f"{self.file_id}:{self.generation}:{self.fmt}:{self.target_bytes}"
        return '"' + xxhash.xxh3_64_hexdigest(key.encode()) + '"'

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.fmt]

    @property
    def filename(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.title)[:60]
        return f"{safe}.{EXTENSIONS[self.fmt]}"

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes | memoryview]:
        """The bytes [start, end) in pieces of at most one unit."""
        lay = self.layout()
        stop = lay.size if end is None else min(end, lay.size)
        pos = start
        units_start = len(lay.prefix)
        units_end = lay.size - len(lay.suffix)
        while pos < stop:
            if pos < units_start:
                piece: bytes | memoryview = lay.prefix[pos:min(stop, units_start)]
            elif pos < units_end:
                index = min((pos - units_start) // lay.unit_bytes, lay.unit_count - 1)
                inner = pos - units_start - index * lay.unit_bytes
                unit = self._unit(lay, index)
                piece = unit[inner:inner + (stop - pos)]
            else:
                piece = lay.suffix[pos - units_end:stop - units_end]
            yield piece
            pos += len(piece)

    def _unit(self, lay: Layout, index: int) -> bytes | memoryview:
        length = lay.last_unit_bytes if index == lay.unit_count - 1 else lay.unit_bytes
        if self.fmt == "pdf":
            return _pool_slice(self.seed, index, length)
        if self.fmt == "png":
            data = _pool_slice(self.seed, index, length - 12)
            head = struct.pack(">I", len(data)) + b"evAd"
            return head + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(b"evAd")))
        data = _pool_slice(self.seed, index, length - 4)
        return b"\xff\xfe" + struct.pack(">H", len(data) + 2) + data

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for piece in self.read():
            digest.update(piece)
        return digest.hexdigest()


@lru_cache(maxsize=256)
def _layout(fmt: str, target: int, title: str, seed: int) -> Layout:
    if fmt == "pdf":
        return _pdf_layout(target, title)
    if fmt == "png":
        prefix, suffix = _png_parts(title, seed)
        return _units(prefix, suffix, target, UNIT_DATA + 12, 12)
    prefix, suffix = _jpeg_parts(title)
    return _units(prefix, suffix, target, UNIT_DATA + 4, 4)


def _units(prefix: bytes, suffix: bytes, target: int, unit: int, overhead: int) -> Layout:
    room = max(0, target - len(prefix) - len(suffix))
    full, rest = divmod(room, unit)
    if rest > overhead:
        return Layout(prefix, suffix, full + 1, unit, rest)
    if full and rest:  # too little left for a unit of its own: the last unit takes it
        return Layout(prefix, suffix, full, unit, unit + rest)
    return Layout(prefix, suffix, full, unit, unit)


def _pdf_text(title: str) -> str:
    return "".join(c for c in title if c.isalnum() or c in " -_.#:")[:80]


def _pdf_layout(target: int, title: str) -> Layout:
    text = _pdf_text(title)
    content = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    head = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(head))
        head += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    offsets.append(len(head))
    padding = 0
    for _ in range(3):  # the xref offset's digit count depends on the padding and back
        prefix = bytes(head) + b"6 0 obj\n<< /Length %d >>\nstream\n" % padding
        suffix = _pdf_suffix(offsets, len(prefix) + padding)
        padding = max(0, target - len(prefix) - len(suffix))
    prefix = bytes(head) + b"6 0 obj\n<< /Length %d >>\nstream\n" % padding
    suffix = _pdf_suffix(offsets, len(prefix) + padding)
    full, rest = divmod(padding, POOL_BLOCK_BYTES)
    if rest:
        return Layout(prefix, suffix, full + 1, POOL_BLOCK_BYTES, rest)
    return Layout(prefix, suffix, full, POOL_BLOCK_BYTES, POOL_BLOCK_BYTES)


def _pdf_suffix(offsets: list[int], stream_end: int) -> bytes:
    tail = b"\nendstream\nendobj\n"
    xref = stream_end + len(tail)
    rows = b"".join(b"%010d 00000 n \n" % off for off in offsets)
    return (tail + b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1) + rows
            + b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _png_parts(title: str, seed: int) -> tuple[bytes, bytes]:
    side = 16
    color = bytes(((seed >> shift) & 0xFF) for shift in (0, 8, 16))
    rows = b"".join(b"\x00" + color * side for _ in range(side))
    prefix = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
              + _chunk(b"tEXt", b"Comment\x00" + title.encode("latin-1", "replace"))
              + _chunk(b"IDAT", zlib.compress(rows, 9)))
    return prefix, _chunk(b"IEND", b"")


@lru_cache(maxsize=1)
def _base_jpeg() -> bytes:
    import pymupdf

    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 16, 16), False)
    pix.clear_with(180)
    data: bytes = pix.tobytes("jpeg")
    return data


def _jpeg_parts(title: str) -> tuple[bytes, bytes]:
    note = title.encode("latin-1", "replace")[:200]
    prefix = b"\xff\xd8\xff\xfe" + struct.pack(">H", len(note) + 2) + note
    return prefix, _base_jpeg()[2:]


class BlobRegistry:
    """Every file the simulator serves, by file id; SHA-256 computed once, on first need."""

    def __init__(self, first_id: int = 7_000_000_000) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[int, Blob] = {}
        self._sha: dict[tuple[int, int], str] = {}
        self._next_id = first_id

    def add(self, fmt: str, target_bytes: int, title: str) -> Blob:
        with self._lock:
            blob = Blob(self._next_id, fmt, max(0, target_bytes), title)
            self._blobs[blob.file_id] = blob
            self._next_id += 1
            return blob

    def get(self, file_id: int) -> Blob | None:
        return self._blobs.get(file_id)

    def __len__(self) -> int:
        return len(self._blobs)

    def sha256(self, blob: Blob) -> str:
        key = (blob.file_id, blob.generation)
        found = self._sha.get(key)
        if found is None:
            found = blob.sha256()
            self._sha[key] = found
        return found

    def bump_generation(self, file_id: int) -> Blob | None:
        with self._lock:
            blob = self._blobs.get(file_id)
            if blob is not None:
                blob.generation += 1
            return blob


def sign(key: bytes, file_id: int, expires: int) -> str:
    """The signature of a storage link to ``file_id`` valid until ``expires``."""
    return hmac.new(key, f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:40]
