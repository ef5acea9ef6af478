"""The prompt improver's texts: the improved prompt with its two buttons, and every answer to
them."""

from __future__ import annotations

from bot.i18n import _


def proposal(improved: str) -> str:
    return _(
        "✨ Your request as a detailed prompt for the video model:\n\n{prompt}\n\n"
        "Render this prompt, or your text as you wrote it?"
    ).format(prompt=improved)


def button_improved() -> str:
    return _("✅ Render this")


def button_plain() -> str:
    return _("✏️ As I wrote it")


def not_improved() -> str:
    return _("The prompt could not be improved this time: your text is rendered as you wrote it.")


def queued_improved(number: int) -> str:
    return _("✅ Job #{id} is queued with the detailed prompt.").format(id=number)


def queued_plain(number: int) -> str:
    return _("✏️ Job #{id} is queued with your text as you wrote it.").format(id=number)


def already_chosen() -> str:
    return _("You have already chosen for this request — nothing was changed.")


def still_improving() -> str:
    return _("The prompt is still being written — one moment.")


def expired() -> str:
    return _("This suggestion is too old — nothing was changed. Send the request again.")


def busy() -> str:
    return _(
        "The prompt for your previous request is still being written. Send this one again "
        "in a moment."
    )
