"""A user's photo → the conditioning image of an image-to-video model: validated and fitted.

Photos come from strangers, so nothing about them is trusted: the format is read from the bytes
(never from a file name or a MIME type), the byte size and the pixel count are checked before
any pixel is decoded (a decompression bomb — a small PNG that claims 50 000 × 50 000 pixels — is
refused from its header), and a truncated or corrupt file is refused in one line instead of
raising mid-render. The EXIF orientation is applied (phones store portraits as rotated
landscapes), then the photo is fitted: the aspect of the three a video model renders well
(16:9, 9:16 or 1:1) that is closest to the photo's, a centre crop to it, and a resize to the
model's size for that aspect (sides multiple of its ``side_multiple``, within ``max_pixels``).

The fitted image is what gets stored with the job and given to the pipeline, as PNG bytes: the
bot never decodes a photo twice, and a worker on another machine renders exactly the image the
user was told about.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.options import ModelLimits, fit_size

if TYPE_CHECKING:
    from PIL import Image as PILImage

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""Photos larger than this are refused before download (the cloud Bot API's ``getFile`` limit
is 20 MB as well)."""
MAX_IMAGE_PIXELS = 40_000_000
"""Photos of more pixels (e.g. 8000 × 5000) are refused from their header, before decoding."""
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
"""Formats read (by content). Animated GIF/WebP: the first frame."""
ASPECTS: dict[str, tuple[int, int]] = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
"""The aspects a photo is fitted to: the ones video models are trained on."""
FITTED_MIME = "image/png"


class ImageError(ValueError):
    """A photo that cannot be used; ``code`` says why (the bot words it for the user):
    ``empty``, ``too_large`` (bytes), ``too_many_pixels``, ``not_an_image``, ``corrupt``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FittedImage:
    """The photo as the model gets it: PNG bytes of exactly ``width`` × ``height``."""

    data: bytes
    width: int
    height: int
    aspect: str
    source_format: str
    source_width: int
    source_height: int
    mime: str = FITTED_MIME


def open_image(
    data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS
) -> PILImage.Image:
    """Decode ``data`` into an RGB image with its EXIF orientation applied, or raise
    :class:`ImageError`. The pixel count is checked from the header before decoding."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageError("empty", "the file is empty")
    if len(data) > max_bytes:
        raise ImageError("too_large", f"{len(data)} bytes (at most {max_bytes})")
    with warnings.catch_warnings():
        # Pillow only warns below twice its own bomb limit; here any bomb is an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            if isinstance(exc, UnidentifiedImageError):
                raise ImageError("not_an_image", "not a JPEG, PNG, WebP, BMP or GIF image") from exc
            raise ImageError("too_many_pixels", str(exc)) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError("corrupt", f"unreadable image: {exc}") from exc
        width, height = image.size
        if width <= 0 or height <= 0:
            raise ImageError("corrupt", f"image of {width}x{height} pixels")
        if width * height > max_pixels:
            raise ImageError(
                "too_many_pixels",
                f"{width}x{height} = {width * height} pixels (at most {max_pixels})",
            )
        try:
            image.load()  # decodes now: a truncated file fails here, not in the worker
            image = ImageOps.exif_transpose(image) or image
            return image.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError("too_many_pixels", str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError("corrupt", f"unreadable image: {exc}") from exc


def pick_aspect(width: int, height: int) -> str:
    """The aspect of :data:`ASPECTS` closest to ``width`` : ``height`` on a log scale (so 2:1
    and 1:2 are as far from 1:1). A tie — 4:3 and 3:4, exactly halfway, the shape of most phone
    photos — keeps the photo's orientation: 16:9 or 9:16, not square."""
    import math

    ratio = math.log(width / height)

    def distance(name: str) -> tuple[float, bool]:
        aspect_w, aspect_h = ASPECTS[name]
        return round(abs(ratio - math.log(aspect_w / aspect_h)), 9), aspect_w == aspect_h

    return min(ASPECTS, key=distance)


def target_size(aspect: str, pixels: int, limits: ModelLimits) -> tuple[int, int]:
    """The video size for ``aspect`` with about ``pixels`` pixels that ``limits`` accept."""
    aspect_w, aspect_h = ASPECTS[aspect]
    return fit_size(aspect_w, aspect_h, pixels, limits)


def photo_size(width: int, height: int, pixels: int, limits: ModelLimits) -> tuple[int, int]:
    """The video size for a photo of ``width`` × ``height``: its closest aspect, about
    ``pixels`` pixels (the model's default area, or the one a user asked for)."""
    return target_size(pick_aspect(width, height), pixels, limits)


def fit_image(image: PILImage.Image, width: int, height: int) -> PILImage.Image:
    """Centre-crop ``image`` to ``width`` : ``height`` and resize it to exactly that size."""
    from PIL import ImageOps

    return ImageOps.fit(image.convert("RGB"), (width, height), method=_lanczos())


def prepare_image(
    data: bytes,
    pixels: int,
    limits: ModelLimits,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> FittedImage:
    """Validate ``data`` and fit it to the model: the whole path from a user's file to the
    stored conditioning image. Raises :class:`ImageError`."""
    image = open_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    source_format = _format_of(data)
    aspect = pick_aspect(*image.size)
    width, height = target_size(aspect, pixels, limits)
    fitted = fit_image(image, width, height)
    out = io.BytesIO()
    fitted.save(out, format="PNG", optimize=False)
    return FittedImage(
        data=out.getvalue(),
        width=width,
        height=height,
        aspect=aspect,
        source_format=source_format,
        source_width=image.size[0],
        source_height=image.size[1],
    )


def decode_fitted(data: bytes) -> PILImage.Image:
    """The stored fitted image back as an RGB PIL image (what the pipeline is called with)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def read_image_file(path: str, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of an image file for :func:`prepare_image` (the CLI's ``--image``); one byte
    more than ``max_bytes`` at most, enough to refuse a larger file without reading it all."""
    with open(path, "rb") as handle:
        return handle.read(max_bytes + 1)


def _format_of(data: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=FORMATS) as image:
        return str(image.format)


def _lanczos() -> int:
    from PIL import Image

    return int(Image.Resampling.LANCZOS)
