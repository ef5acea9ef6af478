"""Inline keyboards and their callback data.

Callback data are typed ``CallbackData`` factories (short prefixes: Telegram allows 64 bytes).
They carry ids only; a handler must re-check that the presser owns the job it names, because
callback data come from the client and can be forged.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.texts import share as share_texts
from bot.texts import status as status_texts


class RepeatCb(CallbackData, prefix="rep"):
    """ "🔁 Another take" under a video: the same options as ``job_id`` with a new seed."""

    job_id: int


class SettingsCb(CallbackData, prefix="set"):
    """The "⚙️ Settings" button and the settings keyboard: ``action`` ``open``/``set``/``reset``,
    ``name`` a setting, ``value`` its new value."""

    action: str = "open"
    name: str = ""
    value: str = ""


class CancelCb(CallbackData, prefix="cxl"):
    """ "✖ Cancel" under the status message of an active job (the rules of ``/cancel``)."""

    job_id: int


class ImproveCb(CallbackData, prefix="imp"):
    """«✅ Render this» / «✏️ As I wrote it» under an improved prompt: ``token`` names the draft
    (``bot/storage/drafts.py``: random, 16 characters), ``choice`` is ``improved`` or ``plain``."""

    token: str
    choice: str


class ShareCb(CallbackData, prefix="shl"):
    """ "🔗 Share" under a video: make (or show again) the share link of ``job_id``."""

    job_id: int


class ShareRunCb(CallbackData, prefix="shr"):
    """ "🎬 Make this video" under a shared request: render the job behind ``token`` for the
    presser. It carries the link's token, never a job id, and is checked like a new link."""

    token: str


def result_buttons(job_id: int) -> InlineKeyboardBuilder:
    """The buttons under every delivered video (texts in the current locale), as a builder so
    another button can join them before :func:`result_keyboard` lays them out."""
    builder = InlineKeyboardBuilder()
    builder.button(text=status_texts.button_repeat(), callback_data=RepeatCb(job_id=job_id))
    builder.button(text=share_texts.button_share(), callback_data=ShareCb(job_id=job_id))
    builder.button(text=status_texts.button_settings(), callback_data=SettingsCb(action="open"))
    return builder


def result_keyboard(job_id: int) -> InlineKeyboardMarkup:
    """The buttons under every delivered video: «🔁 Another take» and «🔗 Share» in one row,
    «⚙️ Settings» under them."""
    builder = result_buttons(job_id)
    builder.adjust(2, 1)
    return builder.as_markup()


def improve_keyboard(token: str) -> InlineKeyboardMarkup:
    """The two buttons under an improved prompt (texts in the current locale)."""
    from bot.texts import improve as improve_texts

    builder = InlineKeyboardBuilder()
    builder.button(
        text=improve_texts.button_improved(),
        callback_data=ImproveCb(token=token, choice="improved"),
    )
    builder.button(
        text=improve_texts.button_plain(), callback_data=ImproveCb(token=token, choice="plain")
    )
    builder.adjust(2)
    return builder.as_markup()


def cancel_keyboard(job_id: int) -> InlineKeyboardMarkup:
    """The one button under an active job's status message; it goes when the job ends (the
    last edit carries no keyboard)."""
    builder = InlineKeyboardBuilder()
    builder.button(text=status_texts.button_cancel(), callback_data=CancelCb(job_id=job_id))
    return builder.as_markup()
