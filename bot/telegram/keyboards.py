"""Inline keyboards and their callback data.

Callback data are typed ``CallbackData`` factories (short prefixes: Telegram allows 64 bytes).
They carry ids only; a handler must re-check that the presser owns the job it names, because
callback data come from the client and can be forged.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

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


def result_buttons(job_id: int) -> InlineKeyboardBuilder:
    """The buttons under every delivered video (texts in the current locale), as a builder so
    another button can join them before :func:`result_keyboard` lays them out."""
    builder = InlineKeyboardBuilder()
    builder.button(text=status_texts.button_repeat(), callback_data=RepeatCb(job_id=job_id))
    builder.button(text=status_texts.button_settings(), callback_data=SettingsCb(action="open"))
    return builder


def result_keyboard(job_id: int) -> InlineKeyboardMarkup:
    """The buttons under every delivered video, two a row."""
    builder = result_buttons(job_id)
    builder.adjust(2)
    return builder.as_markup()


def cancel_keyboard(job_id: int) -> InlineKeyboardMarkup:
    """The one button under an active job's status message; it goes when the job ends (the
    last edit carries no keyboard)."""
    builder = InlineKeyboardBuilder()
    builder.button(text=status_texts.button_cancel(), callback_data=CancelCb(job_id=job_id))
    return builder.as_markup()
