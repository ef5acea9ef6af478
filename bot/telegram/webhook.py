"""Webhook mode (``WEBHOOK_URL``): Telegram POSTs each update to the bot's own aiohttp server.

Contract of one call (:meth:`Webhook.handle`):

1. The ``X-Telegram-Bot-Api-Secret-Token`` header must equal ``WEBHOOK_SECRET`` (compared with
   :func:`hmac.compare_digest`, so its timing says nothing about the secret). Missing or wrong:
   401, and nothing is parsed, stored or handled — anyone can reach a public URL.
2. The body is parsed as an ``Update`` (not one: 400).
3. The update is written to the update inbox, committed (:meth:`InboxDispatcher.accept`). If that
   fails: 500, and Telegram delivers the update again later — nothing is lost.
4. **Only then 200.** Telegram treats 200 as the confirmation and never sends the update again.
   An update already in the inbox (Telegram re-delivered it because our 200 never reached it)
   gets 200 and is not handled a second time.
5. A fresh update is handled *after* the answer, in a tracked task
   (:meth:`InboxDispatcher.dispatch`), not inline. Why: handling can take long (a 429 wait on a
   reply), and an open request makes Telegram hold back the updates behind it and retry it on a
   timeout; the inbox already makes the update durable, so the answer need not wait for the
   handler. A kill -9 mid-handler leaves the row unfinished: replayed at the next start, like
   polling. Handlers never answer "into" the webhook response: a returned Bot API method is
   called through the Bot API like any other.

At start, after the startup hooks (recovery, replay of unfinished updates), the server starts
listening on ``WEBHOOK_LISTEN`` and then ``setWebhook`` is called with ``WEBHOOK_URL``, the secret
and the update types the routers use. The server serves the path of ``WEBHOOK_URL`` (the reverse
proxy in front, which terminates TLS, must pass it through unchanged). Transient ``setWebhook``
errors (network, 5xx, 429) are retried with backoff; a refusal (a URL Telegram does not accept)
stops the bot with the reason. At shutdown the webhook stays set: Telegram keeps the updates that
arrive meanwhile and delivers them when the bot is back (long polling deletes it at start).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from urllib.parse import urlsplit

from aiogram import Bot
from aiogram.exceptions import (
    RestartingTelegram,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig
from aiohttp import web

from bot.telegram.updates import BACKOFF, InboxDispatcher, Stopped, until_stopped

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SHUTDOWN_TIMEOUT = 5.0
"""Seconds the server waits for calls in progress when it stops (each one is a quick write)."""


class WebhookRefused(RuntimeError):
    """Telegram refused ``setWebhook`` (a URL it does not accept): an operator's error."""


class Webhook:
    """The webhook :class:`~bot.telegram.updates.Receiver`: an aiohttp server on ``listen``."""

    def __init__(
        self,
        url: str,
        secret: str,
        listen: tuple[str, int],
        backoff: BackoffConfig = BACKOFF,
    ) -> None:
        self.url = url
        self.path = urlsplit(url).path or "/"
        self.secret = secret.encode()
        self.host, self.port = listen
        self.backoff = backoff
        self.last_received: float | None = None
        self.dp: InboxDispatcher | None = None
        self.bot: Bot | None = None

    def application(self, dp: InboxDispatcher, bot: Bot) -> web.Application:
        """The aiohttp application serving the webhook path (tests may serve it themselves)."""
        self.dp, self.bot = dp, bot
        app = web.Application()
        app.router.add_post(self.path, self.handle)
        return app

    async def receive(self, dp: InboxDispatcher, bot: Bot, stop: asyncio.Event) -> None:
        runner = web.AppRunner(
            self.application(dp, bot),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            log.info("webhook server listening on %s:%d%s", self.host, self.port, self.path)
            await self.set_webhook(dp, bot, stop)
            await stop.wait()
        except Stopped:
            pass
        finally:
            await runner.cleanup()  # calls in progress finish; their updates are then drained

    async def set_webhook(self, dp: InboxDispatcher, bot: Bot, stop: asyncio.Event) -> None:
        """``setWebhook`` with the URL, the secret and the update types the routers use."""
        backoff = Backoff(self.backoff)
        while True:
            try:
                await until_stopped(
                    stop,
                    bot.set_webhook(
                        url=self.url,
                        secret_token=self.secret.decode(),
                        allowed_updates=dp.resolve_used_update_types(),
                        drop_pending_updates=False,
                    ),
                )
            except (
                TelegramNetworkError,
                TelegramServerError,
                TelegramRetryAfter,
                RestartingTelegram,
            ) as error:
                delay = next(backoff)
                log.error(
                    "setWebhook failed - %s: %s; again in %.1f s (try %d)",
                    type(error).__name__,
                    error,
                    delay,
                    backoff.counter,
                )
                await until_stopped(stop, asyncio.sleep(delay))
                continue
            except TelegramBadRequest as error:
                raise WebhookRefused(
                    f"Telegram refused WEBHOOK_URL {self.url}: {error.message}"
                ) from None
            log.info("webhook set: Telegram posts updates to %s", self.url)
            return

    async def handle(self, request: web.Request) -> web.Response:
        """One call from Telegram (see the module docstring for the contract)."""
        dp, bot = self.dp, self.bot
        assert dp is not None and bot is not None, "application() first"
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret):
            log.warning(
                "webhook call from %s without the right secret: refused (401)", request.remote
            )
            return web.Response(status=401, text="Unauthorized")
        try:
            update = Update.model_validate(await request.json(), context={"bot": bot})
        except ValueError:  # not JSON, or not an Update (pydantic's error is a ValueError)
            log.warning("webhook call with a body that is not an update: refused (400)")
            return web.Response(status=400, text="Bad Request: not an update")
        self.last_received = time.monotonic()
        try:
            fresh = await dp.accept([update])
        except Exception:
            log.exception("update %s: not stored; Telegram will send it again", update.update_id)
            return web.Response(status=500, text="not stored")
        for stored in fresh:
            dp.dispatch(bot, stored)
        await dp.prune_if_due()
        return web.Response(status=200)
