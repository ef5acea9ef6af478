"""Per-update context: who is writing (recorded in ``users``) and whether they are an admin.

An outer middleware on messages and callback queries, so every handler can take ``is_admin``
(and ``user_row``) as keyword arguments instead of recomputing them. Access rules (bans,
allow-list) belong in a middleware of their own, registered after this one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject

log = logging.getLogger(__name__)


class UserContextMiddleware(BaseMiddleware):
    """Adds ``is_admin`` and ``user_row`` to the handler data; upserts the user's names."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = getattr(event, "from_user", None)
        settings = data.get("settings")
        data["is_admin"] = bool(
            user is not None and settings is not None and settings.is_admin(user.id)
        )
        users = data.get("users")
        if user is not None and users is not None and not user.is_bot:
            try:
                data["user_row"] = await users.touch(user.id, user.username, user.first_name)
            except Exception:  # a busy database must not make the bot deaf
                log.exception("could not record user %s", user.id)
        return await handler(event, data)
