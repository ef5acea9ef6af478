"""Routers, one per thing a user does; :func:`setup_routers` gives them in inclusion order.

Order matters: specific commands first, the plain-text request handler after them, and the
fallbacks (unknown commands, media hints, unknown buttons) last.
"""

from __future__ import annotations

from aiogram import Router


def setup_routers() -> list[Router]:
    from bot.handlers import (
        admin,
        buttons,
        generate,
        history,
        media,
        mentions,
        queue,
        settings,
        start,
    )

    routers = [
        start.router,
        admin.router,
        queue.router,
        history.router,
        settings.router,
        generate.router,
        mentions.router,
        buttons.router,
        media.router,
    ]
    for router in routers:
        # Routers are module-level singletons and aiogram lets a router have one parent: free
        # them from a previous Dispatcher (a second App in one process — tests, an in-process
        # restart) before the new one includes them.
        router._parent_router = None
    return routers
