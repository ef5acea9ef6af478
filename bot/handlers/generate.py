"""Requests: plain text in a private chat, and `/generate` / `/gen` with options anywhere.

The order is the durability contract: validate → write the job to SQLite (``queued``) → only then
tell the user it is queued → store the status message's id. The loop may claim the job before
that id is stored; the status reporter reads it from the database at each edit.

Replays (``bot/polling.py``): the job carries the id of the update that asked for it. An update
handled again after a crash finds its job (:func:`replayed_job`) instead of being checked against
the limits and queued a second time; it sends the "queued" reply only if the job has none yet.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, ReplyParameters, Update

from bot import texts
from bot.errors import option_error_text
from bot.jobs import Job, JobSource, JobStatus, JobStore
from bot.limits import admission_lock, check_new_job
from bot.user_settings import quality_options, to_personal
from pipeline.options import GenerationOptions, OptionError, parse_request, resolve_options

if TYPE_CHECKING:
    from bot.worker.loop import GenerationLoop

log = logging.getLogger(__name__)

router = Router(name="generate")


@router.message(Command("generate", "gen"))
@router.message(F.chat.type == "private", F.text, ~F.text.startswith("/"))
async def on_request(
    message: Message,
    bot: Bot,
    jobs: JobStore,
    users: Any,
    settings: Any,
    backend: Any,
    command: CommandObject | None = None,
    loop: GenerationLoop | None = None,
    pause: Any = None,
    is_admin: bool = False,
    event_update: Update | None = None,
) -> None:
    """`/generate текст [options]` anywhere, or plain text in a private chat."""
    text = command.args if command is not None else message.text
    if command is not None and not (text or "").strip():  # a bare /generate: show how
        await message.reply(texts.GENERATE_USAGE)
        return
    await handle_request(
        message, text or "", bot=bot, jobs=jobs, users=users, settings=settings,
        backend=backend, loop=loop, pause=pause, is_admin=is_admin,
        update_id=event_update.update_id if event_update is not None else None,
    )  # fmt: skip


async def handle_request(
    message: Message,
    text: str,
    *,
    bot: Bot,
    jobs: JobStore,
    users: Any,
    settings: Any,
    backend: Any,
    loop: GenerationLoop | None,
    pause: Any,
    is_admin: bool,
    update_id: int | None = None,
) -> Job | None:
    """Parse, validate, check limits, queue. Any refusal is a reply that queues nothing.

    ``update_id``: the update carrying the request; a replay of it returns the job it created.
    """
    user = message.from_user
    if user is None:
        return None
    existing = await replayed_job(jobs, update_id, bot=bot, loop=loop, pause=pause)
    if existing is not None:
        return existing
    stored = await users.get_settings(user.id) if users is not None else {}
    personal = to_personal(stored, backend.defaults, backend.limits, **quality_options(settings))
    try:
        parsed = parse_request(text)
        options = resolve_options(
            parsed.prompt,
            parsed.overrides.merged_over(personal.overrides),  # explicit options win
            backend.defaults,
            backend.limits,
            max_prompt_chars=settings.max_prompt_chars,
        )
    except OptionError as error:
        await message.reply(option_error_text(error, backend.limits, settings.max_prompt_chars))
        return None
    # Only the check and the insert hold the lock: a slow reply (429 wait) must not hold up others.
    async with admission_lock(jobs):
        refusal = await check_new_job(
            user.id, jobs=jobs, settings=settings, users=users, is_admin=is_admin
        )
        job = None
        if refusal is None:
            job = await create_job(
                jobs=jobs,
                user_id=user.id,
                chat_id=message.chat.id,
                request_message_id=message.message_id,
                prompt=options.prompt,
                options=options,
                translate=personal.translate,
                loop=loop,
                update_id=update_id,
            )
    if job is None:
        await message.reply(refusal or "")
        return None
    await announce_job(job, bot=bot, jobs=jobs, loop=loop, pause=pause)
    return job


async def create_job(
    *,
    jobs: JobStore,
    user_id: int,
    chat_id: int,
    request_message_id: int | None,
    prompt: str,
    options: GenerationOptions,
    translate: bool = True,
    source: str = JobSource.REQUEST,
    loop: GenerationLoop | None = None,
    update_id: int | None = None,
) -> Job:
    """Write the job (``queued``, committed) and wake the loop. No Telegram call: this is the
    part to run under :func:`bot.limits.admission_lock`. With ``update_id``, a job that update
    already created is returned instead of a new one."""
    job = await jobs.create(
        user_id, chat_id, request_message_id, prompt, options, translate, source,
        update_id=update_id,
    )  # fmt: skip
    log.info("job %s: queued for user %s (%s)", job.id, user_id, source)
    if loop is not None:
        loop.wake()
    return job


async def replayed_job(
    jobs: JobStore,
    update_id: int | None,
    *,
    bot: Bot,
    loop: GenerationLoop | None = None,
    pause: Any = None,
) -> Job | None:
    """The job update ``update_id`` created before (a replay after a crash), or None.

    A replayed request is neither checked against the limits again (its own job counts against
    them now) nor queued twice; its "queued" reply is sent only if the first run died before
    sending it (no status message stored).
    """
    if update_id is None:
        return None
    job = await jobs.by_update_id(update_id)
    if job is None:
        return None
    if job.status_message_id is None:
        log.info("job %s: replayed update %s, announcing it", job.id, update_id)
        await announce_job(job, bot=bot, jobs=jobs, loop=loop, pause=pause)
    else:
        log.info("job %s: replayed update %s, already announced", job.id, update_id)
    return job


async def announce_job(
    job: Job, *, bot: Bot, jobs: JobStore, loop: GenerationLoop | None = None, pause: Any = None
) -> None:
    """Reply with the job's status (queue position, ETA) and store the reply's id.

    The loop may have claimed the job already; the status reporter then edits this reply once
    its id is stored (``attach``), or gives it its last word if the job has even ended.
    """
    status = loop.status if loop is not None else None
    if status is not None:
        text = await status.queued_text(job.id)
    else:
        text = texts.queued(job.id, await jobs.queue_position(job.id), None)
    if pause is not None and getattr(pause, "paused", False):
        text += "\n\n" + texts.PAUSED_NOTE
    try:
        reply = await bot.send_message(
            chat_id=job.chat_id,
            text=text,
            reply_parameters=(
                ReplyParameters(message_id=job.request_message_id, allow_sending_without_reply=True)
                if job.request_message_id
                else None
            ),
        )
    except TelegramAPIError as error:  # the job stands; its video is still delivered
        log.warning("job %s: queued reply not sent: %s", job.id, error)
        return
    await jobs.set_status_message(job.id, reply.message_id)
    if status is not None:
        current = await jobs.get(job.id)
        if current is not None and current.status in (*JobStatus.ACTIVE, JobStatus.GENERATED):
            status.remember(job.id, job.chat_id, text)
            status.attach(job.id)
        elif current is not None:  # it ended before its status message existed
            await status.settle(current)


async def enqueue(
    *,
    bot: Bot,
    jobs: JobStore,
    user_id: int,
    chat_id: int,
    request_message_id: int | None,
    prompt: str,
    options: GenerationOptions,
    translate: bool = True,
    source: str = JobSource.REQUEST,
    loop: GenerationLoop | None = None,
    pause: Any = None,
) -> Job:
    """:func:`create_job` then :func:`announce_job`. Do not hold the admission lock across it
    (the reply may wait out a flood limit): call the two halves instead."""
    job = await create_job(
        jobs=jobs, user_id=user_id, chat_id=chat_id, request_message_id=request_message_id,
        prompt=prompt, options=options, translate=translate, source=source, loop=loop,
    )  # fmt: skip
    await announce_job(job, bot=bot, jobs=jobs, loop=loop, pause=pause)
    return job
