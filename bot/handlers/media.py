"""The fallback for private chats: unknown commands and anything that is not text get a hint.

Included after every other router, so it only sees what nobody else handled. Groups are left
alone: there the bot answers its commands only.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot import texts

router = Router(name="media")
router.message.filter(F.chat.type == "private")


@router.message(F.text.startswith("/"))
async def on_unknown_command(message: Message) -> None:
    await message.reply(texts.UNKNOWN_COMMAND)


@router.message(~F.text)
async def on_not_text(message: Message) -> None:
    """Photos, stickers, voice, video, documents, locations…: the bot reads only text."""
    await message.reply(texts.MEDIA_HINT)
