"""Filters shared by the routers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiogram import Bot
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

GROUP_COMMANDS = ("generate", "gen")
"""The only commands the bot answers in a group (besides an @mention of it)."""


def admin_ids(settings: Any) -> frozenset[int]:
    """``ADMIN_IDS`` from the settings object (a set, list or comma-separated string)."""
    raw = getattr(settings, "admin_ids", None) if settings is not None else None
    if not raw:
        return frozenset()
    if isinstance(raw, str):
        raw = [part for part in raw.replace(" ", "").split(",") if part]
    values: Iterable[Any] = raw if isinstance(raw, Iterable) else [raw]
    return frozenset(int(value) for value in values)


def is_admin(user_id: int | None, settings: Any) -> bool:
    return user_id is not None and user_id in admin_ids(settings)


class IsAdmin(Filter):
    """Passes only for users listed in ``ADMIN_IDS`` (``settings`` comes from the workflow data)."""

    async def __call__(self, event: Message | CallbackQuery, settings: Any = None) -> bool:
        user = event.from_user
        return is_admin(user.id if user else None, settings)


async def addressed_in_group(message: Message, bot: Bot) -> bool:
    """Whether a group message is one the bot answers there: ``/generate`` or ``/gen`` (sent to
    no bot in particular or to this one), or a message that @mentions the bot. Ordinary chatter
    costs no API call (the bot's username is asked only when a message names some bot)."""
    text = message.text or ""
    if text.startswith("/"):
        command, _, to_bot = text.split(maxsplit=1)[0][1:].partition("@")
        if command.lower() not in GROUP_COMMANDS:
            return False
        return not to_bot or to_bot.lower() == ((await bot.me()).username or "").lower()
    mentions = [e.extract_from(text).lower() for e in message.entities or [] if e.type == "mention"]
    if not mentions:
        return False
    username = (await bot.me()).username
    return bool(username) and f"@{username.lower()}" in mentions
