"""/start and /help: what the bot does, an example, and every option with the model's ranges.

Private chats only: in a group the bot answers nothing but ``/generate``, ``/gen`` and mentions.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.context import AppContext
from bot.texts import help as help_texts


async def on_start(message: Message) -> None:
    await message.answer(help_texts.start())


async def on_help(message: Message, app: AppContext) -> None:
    model = app.model
    await message.answer(
        help_texts.help_text(model.defaults, model.limits, app.settings.max_prompt_chars)
    )


def router() -> Router:
    r = Router(name="start")
    r.message.filter(F.chat.type == "private")
    r.message.register(on_start, CommandStart())
    r.message.register(on_help, Command("help"))
    return r
