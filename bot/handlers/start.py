"""/start and /help: what the bot does, an example, and every option with the model's ranges.

Private chats only: in a group the bot answers nothing but ``/generate``, ``/gen`` and mentions.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot import texts

router = Router(name="start")
router.message.filter(F.chat.type == "private")


@router.message(CommandStart())
async def on_start(message: Message) -> None:
    await message.answer(texts.START)


@router.message(Command("help"))
async def on_help(message: Message, backend: Any, settings: Any) -> None:
    await message.answer(
        texts.help_text(backend.defaults, backend.limits, settings.max_prompt_chars)
    )
