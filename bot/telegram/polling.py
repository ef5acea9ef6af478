"""Long polling on public aiogram APIs: ``bot(GetUpdates(...))`` in the project's own loop.

Each batch is written to the update inbox (:meth:`InboxDispatcher.accept`, committed) *before*
the next ``getUpdates`` carries the ``offset`` that confirms it to Telegram; only then are the
fresh updates handed to ``Dispatcher.feed_update``, each in its own task
(:meth:`InboxDispatcher.dispatch`). If the write fails (the database locked beyond its busy
timeout) the offset stays where it was: the same batch is fetched again after the backoff,
unconfirmed, so not lost. See ``bot/telegram/updates.py`` for the inbox, the replay at start and
the lifecycle around this loop.

Why our own loop: aiogram confirms an update as soon as its handler *task* is created (with
``handle_as_tasks=True``), before any handler has written anything, and its reader is a private
method (``Dispatcher._listen_updates``) that the bot used to override, pinning aiogram to one
release. This loop uses ``GetUpdates``, ``delete_webhook``, ``resolve_used_update_types``,
``feed_update`` and ``aiogram.utils.backoff`` only, all public.

Errors are retried forever with aiogram's backoff (1 s growing to 5 s), as aiogram's polling
does; a 409 Conflict (a webhook is set: Telegram refuses ``getUpdates`` then) deletes the
webhook again first. SIGTERM ends a long poll at once: the request is cancelled, and what it
would have returned stays unconfirmed at Telegram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramConflictError
from aiogram.methods import GetUpdates
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.telegram.updates import BACKOFF, InboxDispatcher, Stopped, until_stopped

log = logging.getLogger(__name__)


class Polling:
    """The long-polling :class:`~bot.telegram.updates.Receiver`."""

    def __init__(self, timeout: int = 10, backoff: BackoffConfig = BACKOFF) -> None:
        self.timeout = timeout
        self.backoff = backoff
        self.last_received: float | None = None

    async def receive(self, dp: InboxDispatcher, bot: Bot, stop: asyncio.Event) -> None:
        allowed_updates = dp.resolve_used_update_types()
        request: dict[str, Any] = {}
        if bot.session.timeout:
            # The long poll itself lasts up to ``timeout``: the HTTP request must outlive it.
            request["request_timeout"] = int(bot.session.timeout + self.timeout)
        backoff = Backoff(self.backoff)
        offset: int | None = None
        webhook_deleted = False
        failed = False
        log.info("receiving updates by long polling (getUpdates, %d s)", self.timeout)
        while not stop.is_set():
            try:
                if not webhook_deleted:  # Telegram refuses getUpdates while a webhook is set
                    await until_stopped(stop, bot.delete_webhook(drop_pending_updates=False))
                    webhook_deleted = True
                get_updates = GetUpdates(
                    offset=offset, timeout=self.timeout, allowed_updates=allowed_updates
                )
                updates = await until_stopped(stop, bot(get_updates, **request))
                fresh = await dp.accept(updates)  # committed before the next offset confirms it
            except Stopped:
                break
            except Exception as error:  # as aiogram: polling never stops on an error
                if isinstance(error, TelegramConflictError):
                    webhook_deleted = False
                failed = True
                delay = next(backoff)
                log.error(
                    "getUpdates failed - %s: %s; again in %.1f s (try %d)",
                    type(error).__name__,
                    error,
                    delay,
                    backoff.counter,
                )
                try:
                    await until_stopped(stop, asyncio.sleep(delay))
                except Stopped:
                    break
                continue
            self.last_received = time.monotonic()
            if failed:
                log.info("getUpdates works again (after %d tries)", backoff.counter)
                backoff.reset()
                failed = False
            if updates:
                # Every update of the batch is stored: the next getUpdates may confirm them all,
                # even if polling stops before all are handled (the rest are replayed).
                offset = max(update.update_id for update in updates) + 1
            for update in fresh:
                dp.dispatch(bot, update)
            await dp.prune_if_due()
