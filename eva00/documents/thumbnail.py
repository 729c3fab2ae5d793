"""A first-page PNG of a PDF, or a scaled PNG of an image (in the sandboxed worker only)."""

from __future__ import annotations

from pathlib import Path

import pymupdf

from eva00.documents.mupdf import UNREADABLE, Unreadable, check_pixels, unreadable


def render_thumbnail(path: Path, filetype: str, max_px: int, max_pixels: int) -> bytes:
    """PNG bytes of the first page (or the image), scaled so its longer side is ``max_px``; an
    image (or an image on that page) of more than ``max_pixels`` pixels is refused undecoded."""
    try:
        if filetype != "pdf":
            _check_image(path, max_pixels)
        with pymupdf.open(path, filetype=filetype) as document:
            if document.page_count < 1:
                raise Unreadable("the document has no pages")
            page = document[0]
            if filetype == "pdf":
                _check_page_images(page, max_pixels)
            longer = max(page.rect.width, page.rect.height)
            if longer <= 0:
                raise Unreadable("the first page is empty")
            scale = max_px / longer
            pixmap = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale), alpha=False)
            return bytes(pixmap.tobytes("png"))
    except UNREADABLE as exc:
        raise unreadable(exc) from None


def _check_image(path: Path, max_pixels: int) -> None:
    # MuPDF reads only the header here (PNG IHDR, JPEG SOF, ...); decoding waits for a pixmap.
    image = pymupdf.mupdf.fz_new_image_from_file(str(path))
    check_pixels(image.w(), image.h(), max_pixels)


def _check_page_images(page: pymupdf.Page, max_pixels: int) -> None:
    # The sizes an image XObject declares in its dictionary; nothing is decoded.
    for entry in page.get_images(full=True):
        check_pixels(int(entry[2]), int(entry[3]), max_pixels, "an image on the first page")
