"""Dispatcher middlewares, registered in :func:`setup_middlewares` in the order they run."""

from __future__ import annotations

from aiogram import Dispatcher

from bot.middlewares.access import AccessMiddleware
from bot.middlewares.context import UserContextMiddleware


def setup_middlewares(dp: Dispatcher) -> None:
    context = UserContextMiddleware()
    dp.message.outer_middleware(context)
    dp.callback_query.outer_middleware(context)
    access = AccessMiddleware()  # bans and ALLOWED_USER_IDS; needs ``user_row`` from context
    dp.message.outer_middleware(access)
    dp.callback_query.outer_middleware(access)


__all__ = ["AccessMiddleware", "UserContextMiddleware", "setup_middlewares"]
