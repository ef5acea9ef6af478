"""Groups: a message that mentions the bot (``@bot_username кот на луне``) is a request, like
``/generate``. Anything else in a group is left alone — there the bot answers only when asked."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Filter
from aiogram.types import Message

from bot.handlers.generate import handle_request

router = Router(name="mentions")
router.message.filter(F.chat.type.in_({"group", "supergroup"}), F.text)


class MentionsBot(Filter):
    """Passes when the text holds an ``@mention`` of this bot; gives the text without it."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        text = message.text or ""
        username = (await bot.me()).username
        if not username:
            return False
        wanted = f"@{username}".lower()
        for entity in message.entities or []:
            if entity.type != "mention":
                continue
            found = entity.extract_from(text)
            if found.lower() == wanted:
                rest = text.replace(found, " ", 1)
                return {"request_text": " ".join(rest.split())}
        return False


@router.message(MentionsBot())
async def on_mention(
    message: Message,
    request_text: str,
    bot: Bot,
    jobs: Any,
    users: Any,
    settings: Any,
    backend: Any,
    loop: Any = None,
    pause: Any = None,
    is_admin: bool = False,
) -> None:
    await handle_request(
        message, request_text, bot=bot, jobs=jobs, users=users, settings=settings,
        backend=backend, loop=loop, pause=pause, is_admin=is_admin,
    )  # fmt: skip
