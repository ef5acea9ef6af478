"""The fallback for private chats: unknown commands and anything that is not text get a hint.

Included after every other router, so it only sees what nobody else handled. Groups are left
alone: there the bot answers its commands only.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.texts import help as help_texts


async def on_unknown_command(message: Message) -> None:
    await message.reply(help_texts.unknown_command())


async def on_not_text(message: Message) -> None:
    """Photos, stickers, voice, video, documents, locations…: the bot reads only text."""
    await message.reply(help_texts.media_hint())


def router() -> Router:
    r = Router(name="fallback")
    r.message.filter(F.chat.type == "private")
    r.message.register(on_unknown_command, F.text.startswith("/"))
    r.message.register(on_not_text, ~F.text)
    return r
