"""Command menus (the "/" button in Telegram): the user list for everyone, only ``/generate`` and
``/gen`` in groups (all the bot answers there), and the user list plus admin commands in each
admin's private chat."""

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

from bot.texts_user import ADMIN_COMMANDS, GROUP_MENU, USER_COMMANDS

log = logging.getLogger(__name__)


def user_commands() -> list[BotCommand]:
    return [BotCommand(command=c, description=d) for c, d in USER_COMMANDS]


def group_commands() -> list[BotCommand]:
    return [BotCommand(command=c, description=d) for c, d in GROUP_MENU]


def admin_commands() -> list[BotCommand]:
    return user_commands() + [BotCommand(command=c, description=d) for c, d in ADMIN_COMMANDS]


async def set_commands(bot: Bot, admin_ids: Iterable[int]) -> None:
    """Publish both menus. An admin who never opened a chat with the bot makes Telegram answer
    400 "chat not found" for their scope: that is logged and skipped, never fatal."""
    await bot.set_my_commands(user_commands(), scope=BotCommandScopeDefault())
    await bot.set_my_commands(group_commands(), scope=BotCommandScopeAllGroupChats())
    for admin_id in admin_ids:
        try:
            await bot.set_my_commands(admin_commands(), scope=BotCommandScopeChat(chat_id=admin_id))
        except TelegramAPIError as error:
            log.warning("could not set the admin command menu for %s: %s", admin_id, error)
