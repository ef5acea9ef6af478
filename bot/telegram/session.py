"""The aiogram HTTP session: Bot API server, timeouts, and retries aiogram does not do itself.

aiogram raises ``TelegramRetryAfter`` on 429 and never waits; a flood limit hit while sending a
finished video would lose it. :class:`RetryMiddleware` wraps every request: 429 → sleep
``retry_after`` and send again; 5xx and network errors → bounded exponential backoff. Client
errors (400, 403, 404…) are never retried — they mean the request itself is wrong or the user
blocked the bot, and the caller decides.

``getUpdates`` is left alone: the dispatcher's polling loop already retries it with its own
backoff, and a retry here would only delay shutdown.

Every try of every call (``getUpdates`` included) can be reported to observers
(:data:`ApiObserver`, :class:`ObserverMiddleware`): the metrics count 429s and 5xx answers by
method, and the health check learns from a successful ``getUpdates`` that updates arrive.

A network error after the request reached Telegram (a timeout mid-upload) may, on retry, send a
message twice; the Bot API offers no idempotency key. Uploads therefore get a timeout sized for
the file (:func:`upload_timeout`), which makes that case rare.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    RestartingTelegram,
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import GetUpdates, TelegramMethod
from aiogram.methods.base import Response, TelegramType

from bot.telegram.pacing import PacingMiddleware

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 60.0
"""Seconds for an ordinary request (aiogram's default)."""
MIN_UPLOAD_RATE = 512 * 1024
"""Bytes per second an upload is assumed to reach at worst, for its timeout."""


def upload_timeout(size_bytes: int) -> int:
    """A request timeout for uploading ``size_bytes``: 2 minutes plus the slowest expected transfer."""
    return int(120 + size_bytes / MIN_UPLOAD_RATE)


@dataclass
class RetryPolicy:
    """How hard to retry. The defaults ride out a Telegram flood wait or a short network outage."""

    max_attempts: int = 6
    """Total tries of one request, the first included."""
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 300.0
    """A 429 asking for a longer wait than this is raised to the caller instead."""


class RetryMiddleware(BaseRequestMiddleware):
    """Retries 429 (after ``retry_after``), 5xx and network errors, a bounded number of times."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy or RetryPolicy()

    def _backoff(self, attempt: int) -> float:
        delay = min(self.policy.max_delay, self.policy.base_delay * 2 ** (attempt - 1))
        return delay * random.uniform(0.8, 1.2)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, GetUpdates):
            return await make_request(bot, method)
        name = type(method).__name__
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if (
                    attempt >= self.policy.max_attempts
                    or exc.retry_after > self.policy.max_retry_after
                ):
                    raise
                delay = exc.retry_after + random.uniform(0.05, 0.25)
                log.warning("%s: 429, retrying in %.1f s (try %d)", name, delay, attempt)
            except (TelegramServerError, RestartingTelegram, TelegramNetworkError) as exc:
                if attempt >= self.policy.max_attempts:
                    raise
                delay = self._backoff(attempt)
                log.warning(
                    "%s: %s, retrying in %.1f s (try %d)", name, type(exc).__name__, delay, attempt
                )
            await asyncio.sleep(delay)
            attempt += 1


ApiOutcome = Literal["ok", "retry_after", "server_error", "network_error", "client_error"]
"""How one try of a Bot API call ended: answered, 429, 5xx (or "restarting"), no answer, 4xx."""

ApiObserver = Callable[[str, ApiOutcome], None]
"""Told of every try of every Bot API call: the method's Bot API name (``sendVideo``) and how it
ended. Called on the event loop; must be quick and must not raise."""


class ObserverMiddleware(BaseRequestMiddleware):
    """Reports each try to the observers; registered inside :class:`RetryMiddleware`, so a
    request retried after a 429 is reported once per 429."""

    def __init__(self, observers: Sequence[ApiObserver]) -> None:
        self.observers = tuple(observers)

    def _tell(self, name: str, outcome: ApiOutcome) -> None:
        for observer in self.observers:
            try:
                observer(name, outcome)
            except Exception:  # an observer never breaks a request
                log.exception("API observer %r failed", observer)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = getattr(method, "__api_method__", type(method).__name__)
        try:
            response = await make_request(bot, method)
        except TelegramRetryAfter:
            self._tell(name, "retry_after")
            raise
        except (TelegramServerError, RestartingTelegram):
            self._tell(name, "server_error")
            raise
        except TelegramNetworkError:
            self._tell(name, "network_error")
            raise
        except TelegramAPIError:
            self._tell(name, "client_error")
            raise
        self._tell(name, "ok")
        return response


def make_session(
    api_url: str | None,
    policy: RetryPolicy | None = None,
    *,
    observers: Sequence[ApiObserver] = (),
    **kwargs: Any,
) -> AiohttpSession:
    """An aiohttp session for the cloud API or a self-hosted Bot API server, with retries.

    With a self-hosted server (``TELEGRAM_API_URL``) uploads may be up to 2000 MB; their timeout is
    set per request by the caller (:func:`upload_timeout`), the session keeps a sane default.
    ``observers`` hear of every try (:data:`ApiObserver`).
    """
    session_kwargs: dict[str, Any] = {"timeout": REQUEST_TIMEOUT, **kwargs}
    if api_url:
        session_kwargs["api"] = TelegramAPIServer.from_base(api_url)
    session = AiohttpSession(**session_kwargs)
    # Pacing first: a request waits its turn once, not again before every retry (the first
    # registered is the outermost); observers see every attempt.
    session.middleware(PacingMiddleware())
    session.middleware(RetryMiddleware(policy))
    if observers:
        session.middleware(ObserverMiddleware(observers))
    return session
