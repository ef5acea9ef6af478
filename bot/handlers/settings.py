"""/settings: personal defaults on an inline keyboard, the current value of each marked ✅.

One row per setting (aspect, length, quality, seed, translation) and a reset button. Only what a
user explicitly picks is stored (``users.settings``); pressing the value already in effect stores
nothing, so a user who never changed a setting keeps following the operator's defaults.
Settings are personal and only change in a private chat: the same buttons pressed in a group
(under a video there) answer with a hint and change nothing.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot import texts_user as t
from bot import user_settings as us
from bot.keyboards import SettingsCb

router = Router(name="settings")
router.message.filter(F.chat.type == "private")  # buttons pressed in a group get a hint below


def settings_keyboard(values: dict[str, Any]) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=t.settings_button(name, value, values[name] == value),
                callback_data=SettingsCb(action="set", name=name, value=value).pack(),
            )
            for value in allowed
        ]
        for name, allowed in us.CHOICES.items()
    ]
    rows.append(
        [
            InlineKeyboardButton(
                text=t.SETTINGS_RESET_BUTTON, callback_data=SettingsCb(action="reset").pack()
            )
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def settings_view(
    stored: dict[str, Any], backend: Any, settings: Any
) -> tuple[str, InlineKeyboardMarkup]:
    """The settings message: the text with what each setting means now, and the keyboard."""
    defaults, limits = backend.defaults, backend.limits
    quality = us.quality_options(settings)
    values = us.effective(stored, defaults, default_quality=quality["default_quality"])
    width, height = us.size_for(values["aspect"], defaults, limits)
    frames = us.frames_for(values["length"], defaults, limits)
    steps = us.steps_for(
        values["quality"], defaults, limits, quality["fast_steps"], quality["distilled"]
    )
    text = t.settings_text(
        values,
        width=width,
        height=height,
        frames=frames,
        fps=defaults.fps,
        steps=steps,
        changed=set(us.clean(stored)) & set(us.CHOICES),
        fast_mode=settings.fast_speedups,
    )
    return text, settings_keyboard(values)


@router.message(Command("settings"))
async def on_settings(message: Message, users: Any, backend: Any, settings: Any) -> None:
    user_id = message.from_user.id if message.from_user else 0
    text, keyboard = settings_view(await users.get_settings(user_id), backend, settings)
    await message.answer(text, reply_markup=keyboard)


@router.callback_query(SettingsCb.filter())
async def on_settings_button(
    callback: CallbackQuery, callback_data: SettingsCb, users: Any, backend: Any, settings: Any
) -> None:
    message = callback.message
    if message is None or message.chat.type != "private":
        await callback.answer(t.BUTTON_SETTINGS_IN_GROUP, show_alert=True)
        return
    user_id = callback.from_user.id
    action = callback_data.action
    if action == "open":
        text, keyboard = settings_view(await users.get_settings(user_id), backend, settings)
        await callback.answer()
        await message.answer(text, reply_markup=keyboard)
        return
    if action == "reset":
        changed = await users.reset_settings(user_id)
        await callback.answer(t.SETTINGS_RESET_DONE if changed else t.SETTINGS_NOTHING_TO_RESET)
        if changed:
            await _show(callback, {}, backend, settings)
        return
    if action != "set":
        await callback.answer(t.BUTTON_BROKEN, show_alert=True)
        return
    try:
        changes = us.choice_changes(callback_data.name, callback_data.value)
    except ValueError:
        await callback.answer(t.BUTTON_BROKEN, show_alert=True)
        return
    stored = await users.get_settings(user_id)
    default_quality = us.quality_options(settings)["default_quality"]
    current = us.effective(stored, backend.defaults, default_quality=default_quality)
    if current[callback_data.name] == callback_data.value:
        await callback.answer(t.SETTINGS_UNCHANGED)
        return
    stored = await users.update_settings(user_id, **changes)
    await callback.answer(t.SETTINGS_SAVED)
    await _show(callback, stored, backend, settings)


async def _show(
    callback: CallbackQuery, stored: dict[str, Any], backend: Any, settings: Any
) -> None:
    """Redraw the settings message in place (or send a new one if it can no longer be edited)."""
    text, keyboard = settings_view(stored, backend, settings)
    message = callback.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=keyboard)
            return
        except TelegramBadRequest as error:
            if "not modified" in str(error):
                return
    # Too old to edit (or gone): show the settings in a new message instead.
    await callback.bot.send_message(callback.from_user.id, text, reply_markup=keyboard)  # type: ignore[union-attr]
