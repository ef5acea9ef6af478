"""Admission of new jobs: every limit is checked here, in one place.

:func:`check_new_job` returns the Russian refusal naming the limit, or None. Callers hold
:func:`admission_lock` around the check *and* the insert, so two messages from one user arriving
together cannot both slip under ``MAX_ACTIVE_JOBS_PER_USER`` (the bot is one process with one
database connection; the lock is what makes "exactly N" exact). Issue 4 adds its limits (daily
count, bans, allow-list) to :func:`check_new_job`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

from bot import texts, texts_user

if TYPE_CHECKING:
    from bot.jobs import JobStore

_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def admission_lock(jobs: JobStore) -> asyncio.Lock:
    """The lock serialising limit checks and job creation on ``jobs``' database."""
    lock = _locks.get(jobs)
    if lock is None:
        lock = _locks[jobs] = asyncio.Lock()
    return lock


async def check_new_job(
    user_id: int,
    *,
    jobs: JobStore,
    settings: Any,
    users: Any = None,
    is_admin: bool | None = None,
) -> str | None:
    """The refusal for one more job of ``user_id`` (naming the limit and when it frees), or None.

    In order: ban, ``ALLOWED_USER_IDS``, ``MAX_ACTIVE_JOBS_PER_USER`` (frees when a job ends),
    ``DAILY_JOBS_PER_USER`` (jobs created since 00:00 UTC, whatever became of them; frees at
    00:00 UTC), ``MAX_QUEUE``. Admins are exempt from all of them."""
    if is_admin is None:
        is_admin = bool(settings.is_admin(user_id))
    if is_admin:
        return None
    if users is not None and await users.is_banned(user_id):
        return texts_user.BANNED
    if not settings.is_allowed(user_id):
        return texts_user.not_allowed(user_id)
    limit = settings.max_active_jobs_per_user
    if await jobs.active_count(user_id) >= limit:
        return texts.limit_active(limit)
    daily = settings.daily_jobs_per_user
    if daily:
        now = jobs.clock()
        day_start = start_of_utc_day(now)
        if await jobs.count_since(user_id, day_start) >= daily:
            return texts_user.limit_daily(daily, day_start + DAY - now)
    if await jobs.count_queued() >= settings.max_queue:
        return texts.limit_queue(settings.max_queue)
    return None


DAY = 86400.0


def start_of_utc_day(ts: float) -> float:
    """00:00 UTC of the day holding ``ts`` (``DAILY_JOBS_PER_USER`` counts from there)."""
    return ts - ts % DAY
