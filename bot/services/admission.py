"""Admission of new jobs: every limit is checked here, in one place.

:meth:`Admission.check` returns a :class:`Refusal` naming the limit (and when it frees), or None.
Callers hold :attr:`Admission.lock` around the check *and* the insert, so two messages from one
user arriving together cannot both slip under ``MAX_ACTIVE_JOBS_PER_USER`` (one process, one
database connection: the lock is what makes "exactly N" exact).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.texts import requests as request_texts

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.storage.jobs import JobStore
    from bot.storage.users import UserStore

DAY = 86400.0


def start_of_utc_day(ts: float) -> float:
    """00:00 UTC of the day holding ``ts`` (``DAILY_JOBS_PER_USER`` counts from there)."""
    return ts - ts % DAY


@dataclass(frozen=True)
class Refusal:
    """Why one more job is refused; :meth:`text` words it in the current locale."""

    reason: str
    """``banned``, ``not_allowed``, ``active``, ``daily``, ``queue``, ``disk_full``."""
    user_id: int
    limit: int = 0
    frees_in: float = 0.0

    def text(self) -> str:
        if self.reason == "banned":
            return request_texts.banned()
        if self.reason == "not_allowed":
            return request_texts.not_allowed(self.user_id)
        if self.reason == "active":
            return request_texts.limit_active(self.limit)
        if self.reason == "daily":
            return request_texts.limit_daily(self.limit, self.frees_in)
        if self.reason == "disk_full":
            return request_texts.disk_full()
        return request_texts.limit_queue(self.limit)


class Admission:
    """The limits of ``settings`` over the jobs and users in the database."""

    def __init__(
        self,
        jobs: JobStore,
        users: UserStore,
        settings: Settings,
        room: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self.jobs = jobs
        self.users = users
        self.settings = settings
        self.room = room
        """Frees video space if needed; False when ``VIDEO_DIR_MAX_GB`` is still reached
        (:meth:`bot.storage.janitor.Janitor.make_room`)."""
        self.lock = asyncio.Lock()

    async def check(self, user_id: int, *, is_admin: bool) -> Refusal | None:
        """In order: ban, ``ALLOWED_USER_IDS``, ``MAX_ACTIVE_JOBS_PER_USER`` (frees when a job
        ends), ``DAILY_JOBS_PER_USER`` (jobs created since 00:00 UTC, whatever became of them),
        ``MAX_QUEUE``. Admins are exempt from all of them."""
        if self.room is not None and not await self.room():
            return Refusal("disk_full", user_id)  # admins too: there is no room for any video
        if is_admin:
            return None
        settings = self.settings
        if await self.users.is_banned(user_id):
            return Refusal("banned", user_id)
        if not settings.is_allowed(user_id):
            return Refusal("not_allowed", user_id)
        limit = settings.max_active_jobs_per_user
        if await self.jobs.active_count(user_id) >= limit:
            return Refusal("active", user_id, limit)
        daily = settings.daily_jobs_per_user
        if daily:
            now = self.jobs.clock()
            day_start = start_of_utc_day(now)
            if await self.jobs.count_since(user_id, day_start) >= daily:
                return Refusal("daily", user_id, daily, day_start + DAY - now)
        if await self.jobs.count_queued() >= settings.max_queue:
            return Refusal("queue", user_id, settings.max_queue)
        return None
