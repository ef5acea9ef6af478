"""Photos for tests, good and bad, made in memory with Pillow (and by hand where Pillow would
refuse to write something that broken)."""

from __future__ import annotations

import io
import struct
import zlib


def solid(width: int, height: int, color: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    """A one-colour picture in ``fmt``."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format=fmt)
    return out.getvalue()


def halves(
    width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> bytes:
    """A PNG whose top half is ``top`` and bottom half ``bottom`` (orientation shows)."""
    from PIL import Image

    image = Image.new("RGB", (width, height), bottom)
    image.paste(Image.new("RGB", (width, height // 2), top), (0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def rotated_jpeg(width: int, height: int, orientation: int = 6) -> bytes:
    """A JPEG of ``width`` × ``height`` stored pixels whose EXIF says to rotate it (6: 90° clockwise,
    as phones store portraits)."""
    from PIL import Image

    image = Image.new("RGB", (width, height), (200, 50, 50))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A few hundred bytes of PNG whose header claims ``width`` × ``height`` pixels: a
    decompression bomb (IDAT of a few zero rows; nothing ever decodes that far)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width * 3 + 1) * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def truncated_jpeg() -> bytes:
    """A JPEG cut after a third of its bytes: the header reads, the pixels do not."""
    from PIL import Image

    image = Image.effect_noise((256, 256), 64).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    data = out.getvalue()
    return data[: len(data) // 3]


NOT_AN_IMAGE = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
"""The start of a PDF: a document that is not a picture."""
