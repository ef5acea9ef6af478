"""Who is writing: records the user, decides once whether they are an admin and which language
they read, and hands handlers an :class:`bot.context.Actor` (``actor``).

An outer middleware on messages and callback queries, registered first; the language middleware
and the access rules (bans, allow-list) run after it and read ``actor``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from aiogram.utils.i18n import I18nMiddleware

from bot.context import Actor
from bot.i18n import LOCALES, catalogues, locale_for_language_code
from bot.middlewares.identity import Requester, requester_of

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.storage.users import User as UserRow

log = logging.getLogger(__name__)


def locale_of(requester: Requester, row: UserRow | None) -> str:
    """The language chosen in /settings, else the one Telegram reports for the user."""
    chosen = row.settings.get("language") if row is not None else None
    if chosen in LOCALES:
        return str(chosen)
    return locale_for_language_code(requester.language_code)


class ActorMiddleware(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        requester = requester_of(event, data.get("event_from_user"))
        if requester is None:
            return None  # nobody to answer (e.g. a service message)
        app: AppContext = data["app"]
        row = None
        try:
            row = await app.users.touch(requester.id, requester.username, requester.name)
        except Exception:  # a busy database must not make the bot deaf
            log.exception("could not record user %s", requester.id)
        data["actor"] = Actor(
            user_id=requester.id,
            is_admin=app.settings.is_admin(requester.id),
            locale=locale_of(requester, row),
            user=row,
        )
        return await handler(event, data)


class LocaleMiddleware(I18nMiddleware):
    """aiogram's i18n middleware with the locale the actor middleware decided."""

    def __init__(self) -> None:
        super().__init__(catalogues())

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        actor: Actor | None = data.get("actor")
        return actor.locale if actor is not None else self.i18n.default_locale
