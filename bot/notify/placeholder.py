"""The picture a status photo starts with, before the first preview exists.

A status message that is a photo (``PREVIEW=on``) must be sent with an image; Telegram cannot
turn a text message into a photo later. The placeholder has the video's aspect, so the message
keeps its shape when the preview and then the video replace it. Pillow only (no torch on the
Telegram side); one JPEG per aspect, made once.
"""

from __future__ import annotations

import io
from functools import lru_cache

MAX_SIDE = 320


def placeholder_size(width: int, height: int) -> tuple[int, int]:
    """The video's ``width``×``height`` scaled so the longest side is :data:`MAX_SIDE`."""
    scale = MAX_SIDE / max(width, height, 1)
    return max(16, round(width * scale)), max(16, round(height * scale))


@lru_cache(maxsize=16)
def placeholder_jpeg(width: int, height: int) -> bytes:
    """A dark, softly graded JPEG of the video's aspect (a few kB)."""
    from PIL import Image

    size = placeholder_size(width, height)
    top, bottom = (38, 42, 54), (18, 20, 26)
    column = Image.new("RGB", (1, size[1]))
    for y in range(size[1]):
        t = y / max(1, size[1] - 1)
        column.putpixel(
            (0, y), tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    image = column.resize(size)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()
