"""Answers about photo requests (photo → video, ``I2V_MODEL``): what is wrong with a photo,
or why photos are not animated here. Each reason of ``pipeline.image.ImageError`` has its text."""

from __future__ import annotations

from bot.i18n import _, number

PHOTO_MARK = "🖼"
"""Marks photo jobs in /history."""


def photo_unavailable() -> str:
    return _(
        "This bot does not animate photos: no image-to-video model is set up. "
        "Describe the video in words instead, for example “a dog runs along the beach at sunset”."
    )


def photo_needs_caption() -> str:
    return _(
        "Add a caption to the photo saying what should happen in the video, for example "
        "“the cat turns its head and blinks”. Options work in the caption too (--steps 30)."
    )


def reply_needs_photo() -> str:
    return _(
        "The message you replied to holds no photo. Reply with /generate to a photo, "
        "or send the photo with a caption."
    )


def photo_download_failed() -> str:
    return _("Telegram did not give me the photo. Please send it again.")


def photo_error(code: str, max_megabytes: float, max_megapixels: float) -> str:
    """The answer to a photo that :mod:`pipeline.image` refused with ``code``."""
    if code == "empty":
        return _("The file is empty (0 bytes). Please send the photo again.")
    if code == "too_large":
        return _("The photo is too large: at most {size} MB. Please send a smaller one.").format(
            size=number(max_megabytes, digits=0)
        )
    if code == "too_many_pixels":
        return _(
            "The picture has too many pixels: at most {megapixels} megapixels. "
            "Please send a smaller one."
        ).format(megapixels=number(max_megapixels, digits=0))
    if code == "corrupt":
        return _("The picture is damaged or cut off and cannot be read. Please send it again.")
    return _(
        "This file is not a picture I can read. Send a photo, or a JPEG, PNG or WebP image as a file."
    )
