"""The job a pressed result button names, when the presser owns it.

Callback data comes from the client and can be forged: a button may name any id. Every button
that acts on "my job" («🔁», «🔗») goes through :func:`owned_job`, so the rule is written once:
an impossible id is answered as a broken button, and a job that does not exist gets the same
answer as someone else's job — nothing about other users' jobs leaks.
"""

from __future__ import annotations

from aiogram.types import CallbackQuery

from bot.context import Actor, AppContext
from bot.storage.jobs import Job
from bot.texts import queue as queue_texts

MAX_SQLITE_INT = 2**63
"""Ids at or above this cannot be stored (SQLite and PostgreSQL BIGINT): a forged button."""


async def owned_job(
    callback: CallbackQuery, job_id: int, app: AppContext, actor: Actor
) -> Job | None:
    """The presser's job ``job_id``; None (the press already answered) for any other id."""
    if not 0 < job_id < MAX_SQLITE_INT:  # forged: no such row can exist
        await callback.answer(queue_texts.button_broken(), show_alert=True)
        return None
    job = await app.jobs.get(job_id)
    if job is None or job.user_id != actor.user_id:
        await callback.answer(queue_texts.button_foreign(), show_alert=True)
        return None
    return job
