"""The services of the Telegram side, built in one place for the bot, the tests and bench.

``bot/__main__.py`` calls :func:`build_context` with the real worker; handler tests call it with a
stand-in worker and a recording Bot, so both run exactly the same services and handlers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiogram import Dispatcher

from bot.backend import ModelInfo, PromptImprover
from bot.config import Settings
from bot.context import AppContext
from bot.handlers import setup_routers
from bot.middlewares import setup_middlewares
from bot.notify.status import StatusHub
from bot.policy import ContentPolicy
from bot.services.admission import Admission
from bot.services.cancel import CancelService
from bot.services.drafts import PromptDrafts
from bot.services.pause import PauseSwitch
from bot.services.policy import PolicyService
from bot.services.requests import RequestService, WorkerControl
from bot.storage.drafts import DraftStore
from bot.storage.jobs import JobStore
from bot.storage.policy import PolicyCounts
from bot.storage.shares import ShareStore
from bot.storage.users import UserStore
from bot.storage.videos import LocalVideoStore, S3VideoStore, VideoStore


def video_store(settings: Settings) -> VideoStore:
    """``VIDEO_STORE``: ``VIDEO_DIR`` on this machine (default), or an S3 bucket
    (``S3_ENDPOINT_URL``, AWS credential variables) shared by workers on other machines; rows
    written before it was set keep their ``VIDEO_DIR`` paths and are still read from there."""
    local = LocalVideoStore(settings.video_dir)
    if not settings.video_store:
        return local
    return S3VideoStore(settings.video_store, endpoint_url=settings.s3_endpoint_url, local=local)


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
    improver: PromptImprover | None = None,
    policy: PolicyService | None = None,
) -> AppContext:
    """The one :class:`AppContext`: the request, cancel and pause services over the stores.
    ``improver``: the prompt improver this process runs (None in a front end without the
    model, or without ``PROMPT_MODEL``); ``policy``: the content policy (none given = one read
    from ``BLOCKED_WORDS_FILE``)."""
    if policy is None:
        policy = PolicyService(ContentPolicy(settings.blocked_words_file), PolicyCounts(jobs.conn))
    requests = RequestService(
        jobs=jobs,
        users=users,
        settings=settings,
        model=model,
        admission=Admission(jobs, users, settings, room),
        status=status,
        pause=pause,
        worker=worker,
        policy=policy,
    )
    return AppContext(
        settings=settings,
        jobs=jobs,
        users=users,
        model=model,
        status=status,
        pause=pause,
        requests=requests,
        cancels=CancelService(jobs, status, worker),
        started_at=time.time() if started_at is None else started_at,
        drafts=PromptDrafts(
            bot=status.bot,
            drafts=DraftStore(jobs.conn, jobs.clock),
            users=users,
            requests=requests,
            settings=settings,
            improver=improver,
        ),
        policy=policy,
        shares=ShareStore(jobs.conn),
    )


def setup_dispatcher(dp: Dispatcher, settings: Settings) -> Dispatcher:
    """Middlewares, then every router in its order: the handling of one update."""
    setup_middlewares(dp, flood_burst=settings.flood_burst, flood_rate=settings.flood_rate)
    dp.include_routers(*setup_routers())
    return dp
