"""/queue, /cancel and the «✖ Cancel» button under status messages.

A user sees and cancels only their own jobs; an admin sees every active job and may cancel any
(:class:`bot.services.cancel.CancelService`, which also keeps ids from leaking).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.context import Actor, AppContext
from bot.eta import JobClock, job_clock, remaining_seconds
from bot.storage.jobs import Job, JobStatus, JobStore
from bot.storage.users import UserStore
from bot.telegram.keyboards import CancelCb
from bot.texts import ALERT_LIMIT, MESSAGE_LIMIT, shorten
from bot.texts import queue as queue_texts
from pipeline.quality import TierSupport

ADMIN_QUEUE_LINES = 30  # ~100 characters each: well under Telegram's 4096 per message
MIN_FRACTION_FOR_ETA = 0.05  # below this, a running job's own pace says too little


def running_left(job: Job, now: float, clock: JobClock) -> float | None:
    """Seconds a running job still needs: from its own pace, else from its tier's typical time;
    None if neither is known yet."""
    measured = MIN_FRACTION_FOR_ETA <= job.progress < 1
    if not clock.measured and not measured:
        return None
    expected = clock.seconds(job.options) if clock.measured else 0.0
    return remaining_seconds(job.progress, now - (job.started_at or now), expected)


async def on_queue(message: Message, app: AppContext, actor: Actor) -> None:
    if actor.is_admin:
        text = await admin_queue_text(app.jobs, app.users)
    else:
        text = await user_queue_text(app.jobs, actor.user_id, app.model.tiers)
    if await app.pause.is_paused():
        text += "\n\n" + queue_texts.queue_paused()
    await message.answer(shorten(text, MESSAGE_LIMIT))


async def user_queue_text(jobs: JobStore, user_id: int, tiers: TierSupport | None = None) -> str:
    """A user's own jobs: the running one with its progress, each queued one with its place and
    ETA (the running jobs' remainder, then every job ahead at its own tier's cost)."""
    own = sorted(await jobs.user_jobs(user_id, JobStatus.ACTIVE, limit=100), key=lambda j: j.id)
    if not own:
        return queue_texts.queue_empty()
    clock = await job_clock(jobs, tiers or TierSupport())  # not measured yet: no made-up ETA
    now = jobs.clock()
    active = await jobs.all_active()
    ahead = 0.0  # what is left of the running job(s), before any queued job can start
    for job in active:
        if job.status == JobStatus.RUNNING:
            ahead += running_left(job, now, clock) or 0.0
    queued = [job for job in active if job.status == JobStatus.QUEUED]
    etas = clock.queue_etas([job.options for job in queued], ahead)
    place = {job.id: (i + 1, eta) for i, (job, eta) in enumerate(zip(queued, etas, strict=True))}
    lines = [queue_texts.queue_header()]
    for job in own:
        if job.status == JobStatus.RUNNING:
            left = running_left(job, now, clock)
            lines.append(queue_texts.queue_line_running(job.number, job.prompt, job.progress, left))
        else:
            position, eta = place.get(job.id, (None, None))
            lines.append(
                queue_texts.queue_line_queued(
                    job.number, job.prompt, position, eta if clock.measured else None
                )
            )
    lines += ["", queue_texts.queue_footer()]
    return "\n".join(lines)


async def admin_queue_text(jobs: JobStore, users: UserStore) -> str:
    """Every active job: the running ones, then the queued ones in claim order (the fair queue),
    each with its owner, age, progress and cost in ordinary videos."""
    active = await jobs.all_active()
    if not active:
        return queue_texts.admin_queue_empty()
    now = jobs.clock()
    queued = sum(job.status == JobStatus.QUEUED for job in active)
    lines = [queue_texts.admin_queue_header(len(active), queued)]
    names: dict[int, str | None] = {}
    for job in active[:ADMIN_QUEUE_LINES]:
        if job.user_id not in names:
            user = await users.get(job.user_id)
            names[job.user_id] = user.username if user is not None else None
        lines.append(
            queue_texts.admin_queue_line(
                job.id, job.user_id, names[job.user_id], job.status, now - job.created_at,
                job.progress, job.cost,
            )
        )  # fmt: skip
    if len(active) > ADMIN_QUEUE_LINES:
        lines.append(queue_texts.admin_queue_more(len(active) - ADMIN_QUEUE_LINES))
    lines += ["", queue_texts.queue_footer()]
    return "\n".join(lines)


def job_id_arg(command: CommandObject) -> int | None:
    """The job number of ``/cancel 12`` (also ``#12``, ``No12``); None without one; ValueError
    for anything that is not a job number."""
    arg = (command.args or "").strip().lstrip("#\u2116")
    if not arg:
        return None
    if not (arg.isascii() and arg.isdigit()) or len(arg) > 18:
        raise ValueError(arg)
    return int(arg)


async def on_cancel(
    message: Message, command: CommandObject, app: AppContext, actor: Actor
) -> None:
    try:
        job_id = job_id_arg(command)
    except ValueError:
        await message.answer(queue_texts.cancel_bad_id())
        return
    await app.cancels.cancel(actor, job_id, message.answer)


MAX_SQLITE_INT = 2**63


async def on_cancel_button(
    callback: CallbackQuery, callback_data: CancelCb, app: AppContext, actor: Actor
) -> None:
    """The same rules as /cancel: the owner or an admin; callback data may be forged, so the job
    is read again and a press on someone else's job changes nothing. The answer stops the
    button's spinner either way; the status message's last edit drops the button."""
    if not 0 < callback_data.job_id < MAX_SQLITE_INT:  # forged: no such row can exist
        await callback.answer(queue_texts.button_broken(), show_alert=True)
        return
    answered = False

    async def answer(text: str) -> None:
        nonlocal answered
        if not answered:  # a callback is answered once
            answered = True
            await callback.answer(shorten(text, ALERT_LIMIT), show_alert=True)

    await app.cancels.cancel_by_button(actor, callback_data.job_id, answer)
    if not answered:
        await callback.answer()


def router() -> Router:
    r = Router(name="queue")
    r.message.filter(F.chat.type == "private")
    r.message.register(on_queue, Command("queue"))
    r.message.register(on_cancel, Command("cancel"))
    # Status messages live in groups too: the button works wherever its message is.
    r.callback_query.register(on_cancel_button, CancelCb.filter())
    return r
