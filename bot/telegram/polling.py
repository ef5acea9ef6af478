"""Long polling that never loses an update: a durable inbox in front of the dispatcher.

Why. aiogram confirms an update to Telegram with the ``offset`` of its next ``getUpdates``, and
with ``handle_as_tasks=True`` (which we keep: one user's 429 wait must not stall the others) it
asks for that next batch as soon as the handler *tasks* are created — before any handler has
written anything. A kill -9 in between lost the request: Telegram never sends a confirmed
update again. ``handle_as_tasks=False`` would close that window by serialising every handler.

How. :class:`InboxDispatcher` overrides one method, ``Dispatcher._listen_updates`` (aiogram
3.31's update reader: ``getUpdates`` → yield each update → advance the offset), keeping its
loop and backoff as they are and adding one step: after a batch arrives and *before* anything
is yielded (so before the offset that confirms it can be sent), the whole batch is written to
``update_inbox`` in one transaction (:meth:`UpdateInbox.store`). If that write fails (database
locked beyond its busy timeout) nothing is yielded and the offset stays: the same batch is
fetched again after the usual backoff — unconfirmed, so not lost.

Alternatives considered: a session request middleware on ``GetUpdates`` results can persist the
batch too, but cannot advance the offset past updates it must not hand out again (see below)
without poking at the ``GetUpdates`` object aiogram mutates; wrapping the parent generator
cannot see batch boundaries (one write per update instead of per batch).

Done. :class:`InboxMiddleware`, the outermost update middleware, sets ``done = 1`` when an
update's handling returned or raised an ``Exception`` (a handler that crashed would crash again:
no poison replays). A cancelled handler (shutdown) stays ``done = 0``.

Replay. At start, before polling, :meth:`InboxDispatcher.replay_pending` feeds every row with
``done = 0`` through ``feed_update``, oldest first. An update Telegram sends again (the bot died
after storing it but before confirming it) is already in the inbox: it is not handed out a
second time, only confirmed. Handlers that create jobs pass the update id to
``JobStore.create`` (unique ``jobs.update_id``), so a replayed request finds its job instead of
queuing a second one, and sends the "queued" reply only if the job has no status message yet.
Other commands (``/queue``, ``/help``…) may answer twice after a crash inside their handler:
harmless. Done rows older than a day are pruned (Telegram keeps an unconfirmed update for 24 h,
so none of them can come back).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher, loggers
from aiogram.dispatcher.dispatcher import DEFAULT_BACKOFF_CONFIG
from aiogram.methods import GetUpdates
from aiogram.types import TelegramObject, Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.storage.inbox import UpdateInbox

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0
"""Seconds between two prunes while polling."""


class InboxMiddleware(BaseMiddleware):
    """Update outer middleware (inside aiogram's own error and context ones): mark the update
    handled once its handling ended."""

    def __init__(self, inbox: UpdateInbox) -> None:
        self.inbox = inbox

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            result = await handler(event, data)
        except Exception:
            await self._done(event)
            raise
        await self._done(event)
        return result

    async def _done(self, event: TelegramObject) -> None:
        update_id = getattr(event, "update_id", None)
        if update_id is None:
            return
        try:
            await self.inbox.mark_done(update_id)
        except Exception:  # replayed at the next start, where job creation is idempotent
            log.exception("update %s: could not be marked handled", update_id)


class InboxDispatcher(Dispatcher):
    """A :class:`~aiogram.Dispatcher` whose polling stores each batch before confirming it.

    Without an ``inbox`` it behaves exactly like aiogram's.
    """

    def __init__(self, *, inbox: UpdateInbox | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inbox = inbox
        if inbox is not None:
            self.update.outer_middleware(InboxMiddleware(inbox))

    async def _listen_updates(  # type: ignore[override]  # aiogram's is a classmethod
        self,
        bot: Bot,
        polling_timeout: int = 30,
        backoff_config: BackoffConfig = DEFAULT_BACKOFF_CONFIG,
        allowed_updates: list[str] | None = None,
    ) -> AsyncGenerator[Update, None]:
        """aiogram 3.31's reader, plus :meth:`UpdateInbox.store` between fetch and yield."""
        if self.inbox is None:
            async for update in super()._listen_updates(
                bot, polling_timeout, backoff_config, allowed_updates
            ):
                yield update
            return
        backoff = Backoff(config=backoff_config)
        get_updates = GetUpdates(timeout=polling_timeout, allowed_updates=allowed_updates)
        kwargs = {}
        if bot.session.timeout:
            kwargs["request_timeout"] = int(bot.session.timeout + polling_timeout)
        failed = False
        last_prune = time.monotonic()
        while True:
            try:
                updates = await bot(get_updates, **kwargs)
                fresh = await self.inbox.store(updates)  # committed before any confirmation
            except Exception as e:  # as aiogram: polling never stops on an error
                failed = True
                loggers.dispatcher.error("Failed to fetch updates - %s: %s", type(e).__name__, e)
                loggers.dispatcher.warning(
                    "Sleep for %f seconds and try again... (tryings = %d, bot id = %d)",
                    backoff.next_delay,
                    backoff.counter,
                    bot.id,
                )
                await backoff.asleep()
                continue
            if failed:
                loggers.dispatcher.info(
                    "Connection established (tryings = %d, bot id = %d)", backoff.counter, bot.id
                )
                backoff.reset()
                failed = False
            if updates:
                # Every update of the batch is stored: the next getUpdates may confirm them all,
                # even if polling stops before all are handed out (the rest are replayed).
                get_updates.offset = max(update.update_id for update in updates) + 1
            for update in updates:
                if update.update_id in fresh:
                    yield update
                else:
                    log.info("update %s: already in the inbox, not handled twice", update.update_id)
            if time.monotonic() - last_prune > PRUNE_EVERY:
                last_prune = time.monotonic()
                await self._prune()

    async def _prune(self) -> None:
        if self.inbox is None:
            return
        try:
            removed = await self.inbox.prune()
        except Exception:
            log.exception("pruning the update inbox failed")
            return
        if removed:
            log.info("update inbox: %d handled updates older than a day pruned", removed)

    async def replay_pending(self, bot: Bot, **kwargs: Any) -> int:
        """Handle, oldest first, every stored update whose handling never finished (the process
        died or stopped meanwhile); prune old handled ones. Returns how many were replayed."""
        if self.inbox is None:
            return 0
        await self._prune()
        pending = await self.inbox.pending()
        if pending:
            log.info("update inbox: replaying %d unfinished updates", len(pending))
        for update_id, payload in pending:
            try:
                update = Update.model_validate_json(payload, context={"bot": bot})
            except ValueError:
                log.exception("update %s: stored payload unreadable; skipped", update_id)
                await self.inbox.mark_done(update_id)
                continue
            try:
                await self.feed_update(bot, update, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception:  # as polling does: log, and go on with the next one
                log.exception("update %s: replay failed", update_id)
        return len(pending)
