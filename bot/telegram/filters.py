"""Filters shared by the routers."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.context import Actor

GROUP_COMMANDS = ("generate", "gen")
"""The only commands the bot answers in a group (besides an @mention of it)."""


class IsAdmin(Filter):
    """Passes only for ``ADMIN_IDS``, as the actor middleware decided it."""

    async def __call__(self, event: Message | CallbackQuery, actor: Actor | None = None) -> bool:
        return actor is not None and actor.is_admin


class MentionsBot(Filter):
    """Passes when the text holds an ``@mention`` of this bot; gives the text without it
    (``request_text``)."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        text = message.text or ""
        mentions = [e for e in message.entities or [] if e.type == "mention"]
        if not mentions:
            return False  # ordinary chatter costs no API call
        username = (await bot.me()).username
        if not username:
            return False
        wanted = f"@{username}".lower()
        for entity in mentions:
            found = entity.extract_from(text)
            if found.lower() == wanted:
                rest = text.replace(found, " ", 1)
                return {"request_text": " ".join(rest.split())}
        return False


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
