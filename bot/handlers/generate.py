"""Requests: plain text in a private chat, ``/generate`` / ``/gen`` anywhere, and in groups a
message that @mentions the bot. All of them go through :class:`bot.services.requests.RequestService`,
by way of :class:`bot.services.drafts.PromptDrafts` (users on the prompt improver's "ask" see the
improved prompt first).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, Update

from bot.context import Actor, AppContext
from bot.services.requests import Origin
from bot.telegram.filters import MentionsBot
from bot.texts import help as help_texts


def origin_of(message: Message, update: Update) -> Origin:
    return Origin(message.chat.id, message.message_id, update.update_id)


async def submit(
    message: Message, text: str, app: AppContext, actor: Actor, update: Update
) -> None:
    admitted = await app.drafts.submit(actor, text, origin_of(message, update))
    if admitted.refusal is not None:
        await message.reply(admitted.refusal)


async def on_generate(
    message: Message, command: CommandObject, app: AppContext, actor: Actor, event_update: Update
) -> None:
    """``/generate <text> [options]`` anywhere; a bare ``/generate`` shows how."""
    text = command.args or ""
    if not text.strip():
        await message.reply(help_texts.generate_usage())
        return
    await submit(message, text, app, actor, event_update)


async def on_text(message: Message, app: AppContext, actor: Actor, event_update: Update) -> None:
    """Plain text in a private chat."""
    await submit(message, message.text or "", app, actor, event_update)


async def on_mention(
    message: Message, request_text: str, app: AppContext, actor: Actor, event_update: Update
) -> None:
    """``@bot_username a cat on the moon`` in a group: a request, like ``/generate``."""
    await submit(message, request_text, app, actor, event_update)


def router() -> Router:
    r = Router(name="generate")
    r.message.register(on_generate, Command("generate", "gen"))
    r.message.register(on_text, F.chat.type == "private", F.text, ~F.text.startswith("/"))
    r.message.register(on_mention, F.chat.type.in_({"group", "supergroup"}), F.text, MentionsBot())
    return r
