"""Routers, one per thing a user does; :func:`setup_routers` builds fresh ones in inclusion order.

Each module has a factory (``router()``), so every Dispatcher (a test, a second front end) gets
its own routers. Order matters: specific commands first, the request handlers after them, and
the fallbacks (unknown commands, media hints, unknown buttons) last.
"""

from __future__ import annotations

from aiogram import Router

from bot.handlers import (
    admin,
    buttons,
    fallback,
    generate,
    history,
    improve,
    photo,
    queue,
    settings,
    share,
    start,
)


def setup_routers() -> list[Router]:
    return [
        share.router(),  # /start <token> before the plain /start
        start.router(),
        admin.router(),
        queue.router(),
        history.router(),
        settings.router(),
        photo.router(),  # before generate: a photo captioned /generate is a photo request
        generate.router(),
        improve.router(),
        buttons.router(),
        fallback.router(),
    ]
