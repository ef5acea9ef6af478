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
from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18nMiddleware

from bot.context import Actor
from bot.i18n import LOCALES, catalogues, locale_for_language_code

if TYPE_CHECKING:
    from bot.context import AppContext
    from bot.storage.users import User as UserRow

log = logging.getLogger(__name__)


def locale_of(from_user: User, row: UserRow | None) -> str:
    """The language chosen in /settings, else the one Telegram reports for the user."""
    chosen = row.settings.get("language") if row is not None else None
    if chosen in LOCALES:
        return str(chosen)
    return locale_for_language_code(from_user.language_code)


class ActorMiddleware(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        from_user: User | None = data.get("event_from_user")
        if from_user is None:
            return None  # nobody to answer (e.g. a service message)
        app: AppContext = data["app"]
        row = None
        if not from_user.is_bot:
            try:
                row = await app.users.touch(from_user.id, from_user.username, from_user.first_name)
            except Exception:  # a busy database must not make the bot deaf
                log.exception("could not record user %s", from_user.id)
        data["actor"] = Actor(
            user_id=from_user.id,
            is_admin=app.settings.is_admin(from_user.id),
            locale=locale_of(from_user, row),
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
