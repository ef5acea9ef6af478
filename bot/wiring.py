"""The services of the Telegram side, built in one place for the bot, the tests and bench.

``bot/__main__.py`` calls :func:`build_context` with the real worker; handler tests call it with a
stand-in worker and a recording Bot, so both run exactly the same services and handlers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiogram import Dispatcher

from bot.backend import ModelInfo
from bot.config import Settings
from bot.context import AppContext
from bot.handlers import setup_routers
from bot.middlewares import setup_middlewares
from bot.notify.status import StatusHub
from bot.policy import ContentPolicy
from bot.services.admission import Admission
from bot.services.cancel import CancelService
from bot.services.pause import PauseSwitch
from bot.services.policy import PolicyService
from bot.services.requests import RequestService, WorkerControl
from bot.storage.jobs import JobStore
from bot.storage.policy import PolicyCounts
from bot.storage.shares import ShareStore
from bot.storage.users import UserStore


def build_context(
    *,
    settings: Settings,
    jobs: JobStore,
    users: UserStore,
    model: ModelInfo,
    status: StatusHub,
    pause: PauseSwitch,
    worker: WorkerControl,
    room: Callable[[], Awaitable[bool]] | None = None,
    started_at: float | None = None,
    policy: PolicyService | None = None,
) -> AppContext:
    """The one :class:`AppContext`: the request, cancel and pause services over the stores
    (``policy``: the content policy; none given = one read from ``BLOCKED_WORDS_FILE``)."""
    if policy is None:
        policy = PolicyService(ContentPolicy(settings.blocked_words_file), PolicyCounts(jobs.conn))
    return AppContext(
        settings=settings,
        jobs=jobs,
        users=users,
        model=model,
        status=status,
        pause=pause,
        requests=RequestService(
            jobs=jobs,
            users=users,
            settings=settings,
            model=model,
            admission=Admission(jobs, users, settings, room),
            status=status,
            pause=pause,
            worker=worker,
            policy=policy,
        ),
        cancels=CancelService(jobs, status, worker),
        started_at=time.time() if started_at is None else started_at,
        policy=policy,
        shares=ShareStore(jobs.conn),
    )


def setup_dispatcher(dp: Dispatcher, settings: Settings) -> Dispatcher:
    """Middlewares, then every router in its order: the handling of one update."""
    setup_middlewares(dp, flood_burst=settings.flood_burst, flood_rate=settings.flood_rate)
    dp.include_routers(*setup_routers())
    return dp
