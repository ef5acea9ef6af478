"""What a photo request costs before the GPU: validating and fitting the photo (``pipeline/image.py``).

Prints the median seconds of :func:`pipeline.image.prepare_image` on typical phone photos (a
12 MP JPEG, a 4K PNG screenshot, a portrait with an EXIF rotation) fitted to Wan 2.1's 832x480
area, the time to refuse a decompression bomb (header only: it must not grow with the claimed
size), and the size of what is stored per job (``job_images``).

    python bench/photo.py            # about 10-20 s on 2 CPU cores
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.image import ImageError, prepare_image
from pipeline.options import ModelLimits

WAN = ModelLimits(side_multiple=16, max_pixels=832 * 480)


def photo(width: int, height: int, fmt: str, orientation: int | None = None) -> bytes:
    """A noisy picture (noise compresses like a real photo, unlike a solid colour)."""
    from PIL import Image

    image = Image.effect_noise((width, height), 40).convert("RGB")
    out = io.BytesIO()
    kwargs = {}
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    image.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}), **kwargs)
    return out.getvalue()


def timed(fn, repeats: int = 5) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> int:
    from tests.fakes.images import png_bomb

    cases = {
        "12 MP JPEG 4000x3000": photo(4000, 3000, "JPEG"),
        "4K PNG 3840x2160": photo(3840, 2160, "PNG"),
        "portrait JPEG 3000x4000 (EXIF 6)": photo(4000, 3000, "JPEG", orientation=6),
    }
    print(f"{'photo':<36} {'MB':>6} {'fit s':>7} {'stored kB':>10} size")
    for name, data in cases.items():
        fitted = prepare_image(data, 832 * 480, WAN)
        seconds = timed(lambda d=data: prepare_image(d, 832 * 480, WAN), repeats=3)
        print(
            f"{name:<36} {len(data) / 1e6:>6.1f} {seconds:>7.2f} {len(fitted.data) / 1e3:>10.0f}"
            f" {fitted.width}x{fitted.height} ({fitted.aspect})"
        )
    for side in (20_000, 100_000):
        bomb = png_bomb(side, side)

        def refuse(b: bytes = bomb) -> None:
            try:
                prepare_image(b, 832 * 480, WAN)
            except ImageError:
                return
            raise AssertionError("a bomb was accepted")

        print(f"bomb {side}x{side} ({len(bomb)} B): refused in {timed(refuse) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
