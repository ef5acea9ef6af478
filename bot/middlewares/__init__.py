"""Dispatcher middlewares, registered in :func:`setup_middlewares` in the order they run."""

from __future__ import annotations

from aiogram import Dispatcher

from bot.middlewares.access import AccessMiddleware
from bot.middlewares.actor import ActorMiddleware, LocaleMiddleware
from bot.middlewares.throttle import ThrottleMiddleware


def setup_middlewares(dp: Dispatcher, *, flood_burst: int, flood_rate: float) -> None:
    """A flooder's surplus is dropped first (before it costs anything), then who is writing
    (``actor``), their language, and whether they may use the bot."""
    throttle = ThrottleMiddleware(flood_burst, flood_rate)
    for middleware in (throttle, ActorMiddleware(), LocaleMiddleware(), AccessMiddleware()):
        dp.message.outer_middleware(middleware)
        dp.callback_query.outer_middleware(middleware)


__all__ = [
    "AccessMiddleware",
    "ActorMiddleware",
    "LocaleMiddleware",
    "ThrottleMiddleware",
    "setup_middlewares",
]
