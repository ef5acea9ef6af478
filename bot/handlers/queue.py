"""/queue and /cancel.

A user sees and cancels only their own jobs; an admin (``ADMIN_IDS``) sees every active job and
may cancel any. Someone else's job id gets exactly the answer a non-existent id gets, so ids
leak nothing. Cancelling a running job flips its database row to ``cancelled`` first (so the
loop can never mark it generated or deliver it) and then sets the loop's cancel flag, which the
pipeline checks at every denoising step.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot import texts_user as t
from bot.eta import estimate_seconds, eta_for_position, remaining_seconds
from bot.filters import is_admin
from bot.jobs import Job, JobStatus, JobStore
from bot.texts import MESSAGE_LIMIT, shorten

log = logging.getLogger(__name__)

router = Router(name="queue")
router.message.filter(F.chat.type == "private")

ADMIN_QUEUE_LINES = 30  # ~100 characters each: well under Telegram's 4096 per message
MIN_FRACTION_FOR_ETA = 0.05  # below this, a running job's own pace says too little


async def per_job_seconds(jobs: JobStore) -> float | None:
    """Median measured generation time; None until a job has been measured (then no ETA is
    shown rather than a made-up one, as in the status messages)."""
    return estimate_seconds(await jobs.recent_durations(), 0.0) or None


def running_left(job: Job, now: float, per_job: float | None) -> float | None:
    """Seconds a running job still needs: from its own pace, else from the median; None if
    neither is known yet."""
    if per_job is None and not MIN_FRACTION_FOR_ETA <= job.progress < 1:
        return None
    return remaining_seconds(job.progress, now - (job.started_at or now), per_job or 0.0)


def _is_paused(pause: Any) -> bool:
    return bool(pause is not None and getattr(pause, "paused", False))


@router.message(Command("queue"))
async def on_queue(
    message: Message,
    jobs: JobStore,
    settings: Any,
    users: Any = None,
    pause: Any = None,
) -> None:
    user_id = message.from_user.id if message.from_user else 0
    if is_admin(user_id, settings):
        text = await admin_queue_text(jobs, users)
    else:
        text = await user_queue_text(jobs, user_id)
    if _is_paused(pause):
        text += "\n\n" + t.QUEUE_PAUSED
    await message.answer(shorten(text, MESSAGE_LIMIT))


async def user_queue_text(jobs: JobStore, user_id: int) -> str:
    own = sorted(await jobs.user_jobs(user_id, JobStatus.ACTIVE, limit=100), key=lambda j: j.id)
    if not own:
        return t.QUEUE_EMPTY
    per_job = await per_job_seconds(jobs)
    now = jobs.clock()
    ahead = 0.0  # what is left of the running job(s), before any queued job can start
    for job in await jobs.all_active():
        if job.status == JobStatus.RUNNING:
            ahead += running_left(job, now, per_job) or 0.0
    lines = [t.QUEUE_HEADER]
    for job in own:
        if job.status == JobStatus.RUNNING:
            left = running_left(job, now, per_job)
            lines.append(t.queue_line_running(job.id, job.prompt, job.progress, left))
        else:
            position = await jobs.queue_position(job.id)
            eta = None
            if position is not None and per_job is not None:
                eta = eta_for_position(position, per_job, ahead)
            lines.append(t.queue_line_queued(job.id, job.prompt, position, eta))
    lines.append("")
    lines.append(t.QUEUE_FOOTER)
    return "\n".join(lines)


async def admin_queue_text(jobs: JobStore, users: Any) -> str:
    active = await jobs.all_active()
    if not active:
        return t.ADMIN_QUEUE_EMPTY
    now = jobs.clock()
    queued = sum(job.status == JobStatus.QUEUED for job in active)
    lines = [t.admin_queue_header(len(active), queued)]
    names: dict[int, str | None] = {}
    for job in active[:ADMIN_QUEUE_LINES]:
        if job.user_id not in names:
            user = await users.get(job.user_id) if users is not None else None
            names[job.user_id] = getattr(user, "username", None)
        lines.append(
            t.admin_queue_line(
                job.id, job.user_id, names[job.user_id], job.status, now - job.created_at,
                job.progress,
            )
        )  # fmt: skip
    if len(active) > ADMIN_QUEUE_LINES:
        lines.append(t.admin_queue_more(len(active) - ADMIN_QUEUE_LINES))
    lines.append("")
    lines.append(t.QUEUE_FOOTER)
    return "\n".join(lines)


@router.message(Command("cancel"))
async def on_cancel(
    message: Message,
    command: CommandObject,
    bot: Bot,
    jobs: JobStore,
    settings: Any,
    loop: Any = None,
) -> None:
    user_id = message.from_user.id if message.from_user else 0
    admin = is_admin(user_id, settings)
    arg = (command.args or "").strip().lstrip("#№")
    if not arg:
        job = await jobs.latest_active(user_id)
        if job is None:
            await message.answer(t.CANCEL_NOTHING)
            return
    else:
        if not (arg.isascii() and arg.isdigit()) or len(arg) > 18:
            await message.answer(t.CANCEL_BAD_ID)
            return
        job = await jobs.get(int(arg))
        if job is None or (job.user_id != user_id and not admin):
            await message.answer(t.cancel_not_found(int(arg)))
            return
    before = await jobs.cancel(job.id)
    if before is None:  # it finished (or was cancelled) since it was read
        current = await jobs.get(job.id)
        await message.answer(t.cancel_already_final(job.id, (current or job).status))
        return
    was_running = before.status == JobStatus.RUNNING
    if was_running and loop is not None:
        loop.cancel(job.id)  # the pipeline sees the flag at its next denoising step
    await message.answer(t.cancelled_running(job.id) if was_running else t.cancelled_queued(job.id))
    by_admin = job.user_id != user_id
    final = t.cancelled_by_admin_status(job.id) if by_admin else t.cancelled_status(job.id)
    # The owner was just answered, unless an admin cancelled it: no second message for them.
    await finish_status(job, final, bot=bot, jobs=jobs, loop=loop, resend=by_admin)


async def finish_status(
    job: Job, text: str, *, bot: Bot, jobs: JobStore, loop: Any, resend: bool = True
) -> None:
    """Give a cancelled job's status message its last word, so it no longer shows a queue place
    or a progress bar, and let the other queued jobs move up. ``resend``: if that message is
    gone, send ``text`` as a new one (False when the owner was answered already)."""
    hub = getattr(loop, "status", None)
    if hub is not None:  # the loop's status hub: respects its throttle, stops pending edits
        await hub.finish(job.id, job.chat_id, text, resend=resend)
        hub.queue_moved()
        return
    current = await jobs.get(job.id)
    if current is None or current.status_message_id is None:
        return
    try:
        await bot.edit_message_text(
            text=text, chat_id=current.chat_id, message_id=current.status_message_id
        )
    except TelegramAPIError as error:  # deleted, not modified, blocked: the cancel stands
        log.info("job %s: status message not edited after cancel: %s", job.id, error)
