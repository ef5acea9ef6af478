"""/settings: personal defaults on an inline keyboard, the current value of each marked ✅.

One row per setting (aspect, length, quality, seed, translation, the prompt improver — only with
``PROMPT_MODEL`` —, language) and a reset button.
Only what a user explicitly picks is stored (``users.settings``); pressing the value already in
effect stores nothing, so a user who never changed a setting keeps following the operator's
defaults (and, for the language, their Telegram language). Settings are personal and only change
in a private chat: the same buttons pressed in a group (under a video there) answer with a hint
and change nothing. A new language takes effect at once: the settings message is redrawn in it.

The quality line and a line under the summary show each tier's typical time, from the same cost
model as the ETA (``bot/eta.py``: this bot's measured pace, or the H200 reference until a job has
been measured, which the text then says). The buttons stay bare labels.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.context import Actor, AppContext
from bot.eta import job_clock
from bot.i18n import locale_for_language_code, use_locale
from bot.services import preferences
from bot.telegram.keyboards import SettingsCb
from bot.texts import queue as queue_texts
from bot.texts import settings as settings_texts


def settings_keyboard(
    values: dict[str, Any], names: tuple[str, ...] = preferences.SETTING_NAMES
) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=settings_texts.button(name, value, values[name] == value),
                callback_data=SettingsCb(action="set", name=name, value=value).pack(),
            )
            for value in allowed
        ]
        for name, allowed in preferences.CHOICES.items()
        if name in names
    ]
    rows.append(
        [
            InlineKeyboardButton(
                text=settings_texts.reset_button(),
                callback_data=SettingsCb(action="reset").pack(),
            )
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def effective(app: AppContext, stored: dict[str, Any], telegram_locale: str) -> dict[str, Any]:
    return preferences.effective(
        stored,
        app.model.defaults,
        default_quality=app.settings.default_quality,
        locale=telegram_locale,
    )


async def settings_view(
    app: AppContext, stored: dict[str, Any], telegram_locale: str
) -> tuple[str, InlineKeyboardMarkup]:
    """The settings message in the language the settings choose: what each setting means now,
    the typical time of each quality (the ETA's cost model, ``bot/eta.py``), and the keyboard."""
    defaults, limits = app.model.defaults, app.model.limits
    quality = preferences.quality_options(app.settings)
    values = effective(app, stored, telegram_locale)
    width, height = preferences.size_for(values["aspect"], defaults, limits)
    frames = preferences.frames_for(values["length"], defaults, limits)
    plans = preferences.tier_plans(
        defaults,
        limits,
        fast_steps=quality["fast_steps"],
        distilled=quality["distilled"],
        cache=app.model.tiers.cache,
    )
    clock = await job_clock(app.jobs, app.model.tiers)
    with use_locale(values["language"]):
        text = settings_texts.summary(
            values,
            width=width,
            height=height,
            frames=frames,
            fps=defaults.fps,
            steps=plans[values["quality"]].steps,
            changed=set(preferences.clean(stored)) & set(preferences.CHOICES),
            fast_mode=app.settings.fast_speedups,
            tier_seconds={q: clock.plan_seconds(plan) for q, plan in plans.items()},
            measured=clock.measured,
            improver=app.settings.prompt_model is not None,
        )
        return text, settings_keyboard(values, visible(app))


def visible(app: AppContext) -> tuple[str, ...]:
    return preferences.visible_settings(app.settings.prompt_model is not None)


def telegram_locale(callback_or_message: CallbackQuery | Message) -> str:
    """The language the user would read without a choice in /settings."""
    user = callback_or_message.from_user
    return locale_for_language_code(user.language_code if user else None)


async def on_settings(message: Message, app: AppContext, actor: Actor) -> None:
    stored = await app.users.get_settings(actor.user_id)
    text, keyboard = await settings_view(app, stored, telegram_locale(message))
    await message.answer(text, reply_markup=keyboard)


async def on_settings_button(
    callback: CallbackQuery, callback_data: SettingsCb, app: AppContext, actor: Actor
) -> None:
    message = callback.message
    if message is None or message.chat.type != "private":
        await callback.answer(settings_texts.only_in_private(), show_alert=True)
        return
    users, action = app.users, callback_data.action
    if action == "open":
        stored = await users.get_settings(actor.user_id)
        text, keyboard = await settings_view(app, stored, telegram_locale(callback))
        await callback.answer()
        await message.answer(text, reply_markup=keyboard)
        return
    if action == "reset":
        changed = await users.reset_settings(actor.user_id)
        await callback.answer(
            settings_texts.reset_done() if changed else settings_texts.nothing_to_reset()
        )
        if changed:
            await _redraw(callback, app, {})
        return
    if action != "set":
        await callback.answer(queue_texts.button_broken(), show_alert=True)
        return
    try:
        if callback_data.name not in visible(app):
            raise ValueError(f"{callback_data.name} is not offered")
        changes = preferences.choice_changes(callback_data.name, callback_data.value)
    except ValueError:
        await callback.answer(queue_texts.button_broken(), show_alert=True)
        return
    stored = await users.get_settings(actor.user_id)
    current = effective(app, stored, telegram_locale(callback))
    if current[callback_data.name] == callback_data.value:
        await callback.answer(settings_texts.unchanged())
        return
    stored = await users.update_settings(actor.user_id, **changes)
    with use_locale(effective(app, stored, telegram_locale(callback))["language"]):
        await callback.answer(settings_texts.saved())
    await _redraw(callback, app, stored)


async def _redraw(callback: CallbackQuery, app: AppContext, stored: dict[str, Any]) -> None:
    """Redraw the settings message in place (or send a new one if it can no longer be edited)."""
    text, keyboard = await settings_view(app, stored, telegram_locale(callback))
    message = callback.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=keyboard)
            return
        except TelegramBadRequest as error:
            if "not modified" in str(error):
                return
    # Too old to edit (or gone): show the settings in a new message instead.
    if callback.bot is not None:
        await callback.bot.send_message(callback.from_user.id, text, reply_markup=keyboard)


def router() -> Router:
    r = Router(name="settings")
    r.message.filter(F.chat.type == "private")  # buttons pressed in a group get a hint
    r.message.register(on_settings, Command("settings"))
    r.callback_query.register(on_settings_button, SettingsCb.filter())
    return r
