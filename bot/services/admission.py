"""Admission of new jobs: every limit is checked here, in one place.

:meth:`Admission.check` returns a :class:`Refusal` naming the limit (and when it frees), or None.
Callers hold :attr:`Admission.lock` around the check *and* the insert, so two messages from one
user arriving together cannot both slip under ``MAX_ACTIVE_JOBS_PER_USER`` or a daily budget (one
process, one database connection: the lock is what makes "exactly N" exact).

Budgets count GPU cost, not jobs (``bot/services/cost.py``: 1 = the model's default job):
``MAX_COST_PER_JOB`` caps one request, ``DAILY_COST_PER_USER`` the sum of a user's jobs created
since 00:00 UTC, ``DAILY_COST_PER_CHAT`` the sum of a group chat's. A job that never started to
render (cancelled while queued, refused at claim time) is not charged
(``JobStore.cost_since``). Admins are exempt from every limit; their jobs still count towards
their group's budget.
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
BUDGET_SLACK = 1e-9
"""Float sums of costs compare with this slack, so twenty 1.0 jobs fit a budget of 20 exactly."""


def start_of_utc_day(ts: float) -> float:
    """00:00 UTC of the day holding ``ts`` (``DAILY_JOBS_PER_USER`` counts from there)."""
    return ts - ts % DAY


@dataclass(frozen=True)
class Refusal:
    """Why one more job is refused; :meth:`text` words it in the current locale."""

    reason: str
    """``banned``, ``not_allowed``, ``active``, ``daily``, ``job_cost``, ``daily_cost``,
    ``chat_cost``, ``queue``, ``disk_full``."""
    user_id: int
    limit: float = 0
    frees_in: float = 0.0
    cost: float = 0.0
    """The cost of the refused request (the cost limits)."""
    left: float = 0.0
    """What is left of the daily budget (``daily_cost``, ``chat_cost``)."""

    def text(self) -> str:
        if self.reason == "banned":
            return request_texts.banned()
        if self.reason == "not_allowed":
            return request_texts.not_allowed(self.user_id)
        if self.reason == "active":
            return request_texts.limit_active(int(self.limit))
        if self.reason == "daily":
            return request_texts.limit_daily(int(self.limit), self.frees_in)
        if self.reason == "job_cost":
            return request_texts.limit_job_cost(self.cost, self.limit)
        if self.reason == "daily_cost":
            return request_texts.limit_daily_cost(self.cost, self.limit, self.left, self.frees_in)
        if self.reason == "chat_cost":
            return request_texts.limit_chat_cost(self.cost, self.limit, self.left, self.frees_in)
        if self.reason == "disk_full":
            return request_texts.disk_full()
        return request_texts.limit_queue(int(self.limit))


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

    async def check(
        self, user_id: int, *, is_admin: bool, cost: float = 0.0, chat_id: int | None = None
    ) -> Refusal | None:
        """In order: ban, ``ALLOWED_USER_IDS``, ``MAX_ACTIVE_JOBS_PER_USER`` (frees when a job
        ends), ``DAILY_JOBS_PER_USER`` (jobs created since 00:00 UTC, whatever became of them),
        ``MAX_COST_PER_JOB``, ``DAILY_COST_PER_USER`` and, in a group chat (``chat_id`` < 0),
        ``DAILY_COST_PER_CHAT`` (``cost``: the request's, in ordinary videos), ``MAX_QUEUE``.
        Admins are exempt from all of them but a full video store (``VIDEO_DIR_MAX_GB``)."""
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
        refusal = await self._check_cost(user_id, cost, chat_id)
        if refusal is not None:
            return refusal
        if await self.jobs.count_queued() >= settings.max_queue:
            return Refusal("queue", user_id, settings.max_queue)
        return None

    async def _check_cost(self, user_id: int, cost: float, chat_id: int | None) -> Refusal | None:
        settings = self.settings
        if settings.max_cost_per_job and cost > settings.max_cost_per_job + BUDGET_SLACK:
            return Refusal("job_cost", user_id, settings.max_cost_per_job, cost=cost)
        now = self.jobs.clock()
        day_start = start_of_utc_day(now)
        frees_in = day_start + DAY - now
        budgets = [("daily_cost", settings.daily_cost_per_user, {"user_id": user_id})]
        if chat_id is not None and chat_id < 0:  # groups, supergroups (and channels)
            budgets.append(("chat_cost", settings.daily_cost_per_chat, {"chat_id": chat_id}))
        for reason, budget, key in budgets:
            if not budget:
                continue
            spent = await self.jobs.cost_since(day_start, **key)
            if spent + cost > budget + BUDGET_SLACK:
                left = max(0.0, budget - spent)
                return Refusal(reason, user_id, budget, frees_in, cost=cost, left=left)
        return None
