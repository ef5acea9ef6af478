"""pipeline/image.py: what a user's photo must be, and what the model gets from it."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pipeline.image import (
    ImageError,
    open_image,
    photo_size,
    pick_aspect,
    prepare_image,
)
from pipeline.options import ModelLimits
from tests.fakes import images

WAN = ModelLimits(side_multiple=16, max_pixels=832 * 480)
TI2V = ModelLimits(side_multiple=32, max_pixels=1280 * 704)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (images.NOT_AN_IMAGE, "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not_an_image"),  # no header Pillow knows
        (images.truncated_jpeg(), "corrupt"),
        (images.png_bomb(), "too_many_pixels"),
        (images.png_bomb(9000, 9000), "too_many_pixels"),
    ],
    ids=["zero-byte", "pdf", "broken-png", "truncated-jpeg", "bomb-50k", "bomb-81mp"],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, code: str) -> None:
    with pytest.raises(ImageError) as caught:
        open_image(data)
    assert caught.value.code == code


def test_byte_cap_is_checked_before_decoding() -> None:
    data = images.solid(64, 64, (1, 2, 3), "PNG")
    with pytest.raises(ImageError) as caught:
        open_image(data, max_bytes=len(data) - 1)
    assert caught.value.code == "too_large"
    assert open_image(data, max_bytes=len(data)).size == (64, 64)


def test_pixel_cap_is_the_operators() -> None:
    data = images.solid(100, 100, (1, 2, 3), "PNG")
    with pytest.raises(ImageError) as caught:
        open_image(data, max_pixels=9_999)
    assert caught.value.code == "too_many_pixels"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF"])
def test_formats_are_read_by_content(fmt: str) -> None:
    image = open_image(images.solid(40, 30, (250, 10, 10), fmt))
    assert image.mode == "RGB" and image.size == (40, 30)


def test_exif_orientation_is_applied() -> None:
    """A phone's portrait is stored as a rotated landscape plus an EXIF flag."""
    image = open_image(images.rotated_jpeg(160, 90, orientation=6))
    assert image.size == (90, 160)
    fitted = prepare_image(images.rotated_jpeg(160, 90, orientation=6), 832 * 480, WAN)
    assert fitted.aspect == "9:16" and fitted.height > fitted.width


@pytest.mark.parametrize(
    ("size", "aspect"),
    [
        ((1920, 1080), "16:9"),
        ((4000, 3000), "16:9"),  # 4:3 is nearer 16:9 than 1:1 on a log scale
        ((1080, 1920), "9:16"),
        ((3000, 4000), "9:16"),
        ((1000, 1000), "1:1"),
        ((1100, 1000), "1:1"),
        ((5000, 1000), "16:9"),  # panoramas crop to the widest aspect
    ],
)
def test_closest_aspect(size: tuple[int, int], aspect: str) -> None:
    assert pick_aspect(*size) == aspect


@pytest.mark.parametrize("limits", [WAN, TI2V], ids=["wan-16", "ti2v-32"])
@pytest.mark.parametrize("source", [(1920, 1080), (1080, 1920), (800, 800)])
def test_fitted_size_obeys_the_model(limits: ModelLimits, source: tuple[int, int]) -> None:
    width, height = photo_size(*source, limits.max_pixels, limits)
    assert width % limits.side_multiple == 0 and height % limits.side_multiple == 0
    assert width * height <= limits.max_pixels
    assert (width > height) == (source[0] > source[1]) and (width == height) == (
        source[0] == source[1]
    )


def test_prepare_crops_to_the_centre_and_keeps_the_colours() -> None:
    """A 4:3 photo, top half red and bottom half blue, becomes a 16:9 PNG of exactly the
    model's size: the crop is centred (both colours stay, split in the middle)."""
    fitted = prepare_image(images.halves(400, 300, (255, 0, 0), (0, 0, 255)), 832 * 480, WAN)
    assert (fitted.width, fitted.height, fitted.aspect) == (832, 464, "16:9")
    assert (fitted.source_width, fitted.source_height, fitted.source_format) == (400, 300, "PNG")
    image = Image.open(io.BytesIO(fitted.data))
    assert image.format == "PNG" and image.size == (832, 464)
    top = image.getpixel((416, 20))
    bottom = image.getpixel((416, 444))
    assert top[0] > 200 and top[2] < 50 and bottom[2] > 200 and bottom[0] < 50


def test_small_area_for_tiny_models() -> None:
    fitted = prepare_image(images.solid(320, 180, (0, 200, 0)), 64 * 64, ModelLimits(min_side=32))
    assert fitted.width * fitted.height <= 64 * 64 + 32 * 16
    assert fitted.width % 16 == 0 and fitted.height % 16 == 0 and fitted.width > fitted.height
