"""The status photo's first picture: a JPEG of the video's aspect, at most 320 px a side."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.notify.placeholder import placeholder_jpeg


@pytest.mark.parametrize(
    ("size", "expected"),
    [((832, 480), (320, 185)), ((480, 832), (185, 320)), ((512, 512), (320, 320))],
)
def test_placeholder_keeps_the_videos_aspect(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    data = placeholder_jpeg(*size)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.size == expected
    assert len(data) < 20_000  # a few kB: the first status message goes out at once
