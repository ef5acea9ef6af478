"""Every update takes one path, in long polling and in webhook mode: stored, handled, marked done.

Why. Telegram forgets an update once the bot has confirmed it: in long polling by the ``offset``
of the next ``getUpdates``, in webhook mode by answering the POST with 200. A kill -9 between
that confirmation and the handler's own write (the job row) would lose the request, and
Telegram never sends a confirmed update again. So each update is written to ``update_inbox``
(committed) *before* it is confirmed, handled, and marked done when its handling ended;
whatever was stored but never finished is replayed at the next start.

How, on public aiogram APIs only (no private method is overridden, so a new aiogram release
needs no code change here):

- :meth:`InboxDispatcher.accept` stores a batch in one transaction and returns the updates that
  were not in the inbox yet. An update already there was sent again by Telegram because the
  confirmation never reached it (the bot died after storing it): it is confirmed, not handled
  a second time.
- :meth:`InboxDispatcher.dispatch` hands a fresh update to ``Dispatcher.feed_update`` in its own
  task, as aiogram's ``handle_as_tasks`` does (one user's 429 wait never stalls the others).
  The tasks are tracked; at shutdown they get :data:`HANDLER_GRACE` seconds, then are cancelled.
- :class:`InboxMiddleware`, the outermost update middleware, sets ``done = 1`` when an update's
  handling returned or raised an ``Exception`` (a handler that crashed would crash again: no
  poison replays). A cancelled handler (shutdown) stays ``done = 0`` and is replayed.
- :meth:`InboxDispatcher.replay_pending`, at start and before any new update is received, feeds
  every ``done = 0`` row through the same path, oldest first. Handlers that create jobs pass the
  update id to ``JobStore.create`` (unique ``jobs.update_id``), so a replayed request finds its
  job instead of queuing a second one. Other commands (``/queue``, ``/help``…) may answer twice
  after a crash inside their handler: harmless. Handled rows older than a day are pruned
  (Telegram keeps an unconfirmed update for 24 h, so none of them can come back).

Who receives: :class:`bot.telegram.polling.Polling` (``getUpdates``) or
:class:`bot.telegram.webhook.Webhook` (an aiohttp server Telegram POSTs to). :class:`UpdateRunner`
is the lifecycle around either, as aiogram's ``start_polling`` has it: SIGTERM/SIGINT handlers →
``dp.emit_startup`` (the same keyword arguments ``start_polling`` passes) → receive until stopped
→ in-flight handlers finish (or are cancelled after the grace) → ``dp.emit_shutdown`` → the
bot's HTTP session closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import TelegramObject, Update
from aiogram.utils.backoff import BackoffConfig

from bot.storage.inbox import UpdateInbox

log = logging.getLogger(__name__)

T = TypeVar("T")

PRUNE_EVERY = 3600.0
"""Seconds between two prunes of handled updates while receiving."""
HANDLER_GRACE = 5.0
"""Seconds handlers in flight may finish after SIGTERM before they are cancelled (replayed at
the next start)."""
BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)
"""Retry delays of ``getUpdates`` / ``setWebhook`` after an error (aiogram's polling default)."""


class Stopped(Exception):
    """Raised by :func:`until_stopped` when the stop event was set first."""


async def until_stopped(stop: asyncio.Event, awaitable: Awaitable[T]) -> T:
    """The result of ``awaitable``, or :class:`Stopped` as soon as ``stop`` is set (the awaitable
    is then cancelled). Lets a long poll or a backoff sleep end at once on SIGTERM."""
    work = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    if work.cancelled():
        raise Stopped
    return work.result()


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
    """aiogram's :class:`~aiogram.Dispatcher` with the durable update inbox in front of it."""

    def __init__(self, *, inbox: UpdateInbox, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inbox = inbox
        self.handling: set[asyncio.Task[None]] = set()
        """Handler tasks in flight (:meth:`dispatch`)."""
        self.in_flight: set[int] = set()
        """Ids of the updates those tasks handle: a replay (a front end taking the lead while
        webhooks already arrive) must not handle one of them a second time."""
        self.last_prune = time.monotonic()
        self.update.outer_middleware(InboxMiddleware(inbox))

    async def accept(self, updates: Sequence[Update]) -> list[Update]:
        """Store ``updates`` in one transaction, committed when this returns (raises if it
        cannot: then nothing may be confirmed); return those that were not stored before."""
        fresh = await self.inbox.store(updates)
        again = [update.update_id for update in updates if update.update_id not in fresh]
        if again:
            log.info("updates %s: already in the inbox, not handled twice", again)
        return [update for update in updates if update.update_id in fresh]

    def dispatch(self, bot: Bot, update: Update, **kwargs: Any) -> asyncio.Task[None]:
        """Handle a stored update in its own task (tracked until it ends)."""
        task = asyncio.create_task(
            self.handle(bot, update, **kwargs), name=f"update-{update.update_id}"
        )
        self.handling.add(task)
        self.in_flight.add(update.update_id)
        task.add_done_callback(self.handling.discard)
        task.add_done_callback(lambda _: self.in_flight.discard(update.update_id))
        return task

    async def handle(self, bot: Bot, update: Update, **kwargs: Any) -> None:
        """``feed_update``, and a handler's returned Bot API method called (as aiogram's polling
        does); an error is logged, never raised (the update is marked done by the middleware)."""
        try:
            response = await self.feed_update(bot, update, **{"bots": [bot], **kwargs})
            if isinstance(response, TelegramMethod):
                await self.silent_call_request(bot, response)
        except Exception:
            log.exception("update %s: handling failed", update.update_id)

    async def drain(self, grace: float = HANDLER_GRACE) -> None:
        """Wait up to ``grace`` seconds for the handlers in flight, then cancel the rest (their
        updates stay unfinished in the inbox and are replayed at the next start)."""
        if not self.handling:
            return
        _, pending = await asyncio.wait(set(self.handling), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("%d update handlers cut short: replayed at the next start", len(pending))

    async def prune(self) -> None:
        """Delete handled updates older than a day (never fails the caller)."""
        self.last_prune = time.monotonic()
        try:
            removed = await self.inbox.prune()
        except Exception:
            log.exception("pruning the update inbox failed")
            return
        if removed:
            log.info("update inbox: %d handled updates older than a day pruned", removed)

    async def prune_if_due(self) -> None:
        if time.monotonic() - self.last_prune > PRUNE_EVERY:
            await self.prune()

    async def replay_pending(self, bot: Bot, **kwargs: Any) -> int:
        """Handle, oldest first, every stored update whose handling never finished (the process
        died or stopped meanwhile); prune old handled ones. Returns how many were replayed."""
        await self.prune()
        pending = await self.inbox.pending()
        if pending:
            log.info("update inbox: replaying %d unfinished updates", len(pending))
        for update_id, payload in pending:
            if update_id in self.in_flight:  # being handled here right now (a webhook)
                continue
            try:
                update = Update.model_validate_json(payload, context={"bot": bot})
            except ValueError:
                log.exception("update %s: stored payload unreadable; skipped", update_id)
                await self.inbox.mark_done(update_id)
                continue
            await self.handle(bot, update, **kwargs)
        return len(pending)


class Receiver(Protocol):
    """Where updates come from: :class:`~bot.telegram.polling.Polling` or
    :class:`~bot.telegram.webhook.Webhook`."""

    last_received: float | None
    """``time.monotonic()`` of the last successful ``getUpdates`` or authenticated webhook call."""

    async def receive(self, dp: InboxDispatcher, bot: Bot, stop: asyncio.Event) -> None:
        """Accept and dispatch updates until ``stop`` is set."""


class UpdateRunner:
    """Startup hooks → receive → drain → shutdown hooks, stopped by SIGTERM/SIGINT or :meth:`stop`."""

    def __init__(
        self, dp: InboxDispatcher, bot: Bot, receiver: Receiver, *, grace: float = HANDLER_GRACE
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.receiver = receiver
        self.grace = grace
        self.running = False
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()

    async def run(self, *, handle_signals: bool = True) -> None:
        if self.running:
            raise RuntimeError("the bot is already running")
        self.running = True
        self.stopping.clear()
        self.stopped.clear()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for sig in signals:
            with contextlib.suppress(NotImplementedError):  # Windows
                loop.add_signal_handler(sig, self.on_signal, sig)
        # What aiogram's start_polling passes to the startup and shutdown hooks.
        hook_data = {"dispatcher": self.dp, "bots": [self.bot], **self.dp.workflow_data}
        hook_data.pop("bot", None)
        try:
            await self.dp.emit_startup(bot=self.bot, **hook_data)
            try:
                await self.receiver.receive(self.dp, self.bot, self.stopping)
            finally:
                await self.dp.drain(self.grace)
                await self.dp.emit_shutdown(bot=self.bot, **hook_data)
        finally:
            await self.bot.session.close()
            for sig in signals:
                with contextlib.suppress(NotImplementedError):
                    loop.remove_signal_handler(sig)
            self.running = False
            self.stopped.set()

    def on_signal(self, sig: signal.Signals) -> None:
        log.warning("received %s: stopping", sig.name)
        self.stopping.set()

    async def stop(self) -> None:
        """Stop receiving and wait until the shutdown hooks ran (what SIGTERM does)."""
        self.stopping.set()
        if self.running:
            await self.stopped.wait()
