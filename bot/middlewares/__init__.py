"""Dispatcher middlewares, registered in :func:`setup_middlewares` in the order they run."""

from __future__ import annotations

from aiogram import Dispatcher

from bot.middlewares.access import AccessMiddleware
from bot.middlewares.actor import ActorMiddleware, LocaleMiddleware


def setup_middlewares(dp: Dispatcher) -> None:
    """Who is writing (``actor``), then their language, then whether they may use the bot."""
    for middleware in (ActorMiddleware(), LocaleMiddleware(), AccessMiddleware()):
        dp.message.outer_middleware(middleware)
        dp.callback_query.outer_middleware(middleware)


__all__ = ["AccessMiddleware", "ActorMiddleware", "LocaleMiddleware", "setup_middlewares"]
