"""The bot's profile in every language: command menus (the "/" button) and descriptions.

For each language the user list goes to everyone, only ``/generate`` and ``/gen`` to groups (all
the bot answers there), and the user list plus the admin commands to each admin's private chat.
The default locale is published without a ``language_code`` (every user whose language has no
menu of its own sees it), the others with theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
)

from bot.i18n import DEFAULT_LOCALE, LOCALES, use_locale
from bot.texts import help as help_texts

log = logging.getLogger(__name__)


def _commands(pairs: list[tuple[str, str]]) -> list[BotCommand]:
    return [BotCommand(command=command, description=text) for command, text in pairs]


async def set_profile(bot: Bot, admin_ids: Iterable[int]) -> None:
    """Publish the menus and descriptions in every language. An admin who never opened a chat
    with the bot makes Telegram answer 400 "chat not found" for their scope: that is logged and
    skipped, never fatal."""
    admins = list(admin_ids)
    for locale in LOCALES:
        language = None if locale == DEFAULT_LOCALE else locale
        with use_locale(locale):
            users = _commands(help_texts.user_commands())
            groups = _commands(help_texts.group_commands())
            admin = users + _commands(help_texts.admin_commands())
            description, short = help_texts.description(), help_texts.short_description()
        await bot.set_my_commands(users, scope=BotCommandScopeDefault(), language_code=language)
        await bot.set_my_commands(
            groups, scope=BotCommandScopeAllGroupChats(), language_code=language
        )
        await bot.set_my_description(description, language_code=language)
        await bot.set_my_short_description(short, language_code=language)
        for admin_id in admins:
            try:
                await bot.set_my_commands(
                    admin, scope=BotCommandScopeChat(chat_id=admin_id), language_code=language
                )
            except TelegramAPIError as error:
                log.warning("could not set the admin command menu for %s: %s", admin_id, error)
