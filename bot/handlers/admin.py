"""Operator commands: /stats, /ban, /unban, /pause, /resume — only for ``ADMIN_IDS``.

``router`` holds two sub-routers: ``admin_only`` (the ``IsAdmin`` filter sits on the router, so
no handler can forget it) and, after it, ``refusal``, which answers anyone else with a short
refusal that shows no data. Both work in private chats only: stats never land in a group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message

from bot import texts_user as t
from bot.charts import DEFAULT_DAYS, render_chart
from bot.filters import IsAdmin, is_admin
from bot.handlers.queue import finish_status
from bot.jobs import JobStore
from bot.limits import start_of_utc_day
from bot.worker.janitor import disk_usage

log = logging.getLogger(__name__)

ADMIN_COMMANDS = ("stats", "ban", "unban", "pause", "resume")

admin_only = Router(name="admin_only")
admin_only.message.filter(F.chat.type == "private", IsAdmin())

refusal = Router(name="admin_refusal")
refusal.message.filter(F.chat.type == "private")

router = Router(name="admin")
router.include_routers(admin_only, refusal)


def process_started_at() -> float:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # psutil missing or restricted /proc: uptime from import time instead
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


@admin_only.message(Command("stats"))
async def on_stats(
    message: Message,
    jobs: JobStore,
    backend: Any,
    pause: Any = None,
    started_at: float | None = None,
    settings: Any = None,
) -> None:
    now = time.time()
    stats = await jobs.stats(start_of_utc_day(now))
    try:
        device = await asyncio.to_thread(backend.device_info)
    except Exception as error:  # a stats command must not fail on a driver hiccup
        device = f"нет данных ({type(error).__name__})"
    uptime = now - (started_at if started_at is not None else process_started_at())
    paused = bool(getattr(pause, "paused", False))
    disk = None
    if settings is not None:
        try:
            files, size = await asyncio.to_thread(disk_usage, settings.video_dir)
            disk = t.disk_text(files, size, settings.video_retention_days)
        except Exception:  # a disk figure is a nicety
            log.exception("/stats: cannot measure VIDEO_DIR")
    await message.answer(
        t.stats_text(stats, device=device, uptime=uptime, paused=paused, disk=disk)
    )
    buckets = await jobs.hourly(now - DEFAULT_DAYS * 86400)
    png = await render_chart(buckets, DEFAULT_DAYS)
    await message.answer_photo(
        BufferedInputFile(png, filename="stats.png"), caption=t.STATS_CHART_CAPTION
    )


def _user_id_arg(command: CommandObject) -> int | None:
    """A Telegram user id (a positive whole number), or None."""
    arg = (command.args or "").strip()
    if not (arg.isascii() and arg.isdigit()) or len(arg) > 19 or not 0 < int(arg) < 2**63:
        return None
    return int(arg)


@admin_only.message(Command("ban"))
async def on_ban(
    message: Message,
    command: CommandObject,
    bot: Bot,
    jobs: JobStore,
    users: Any,
    settings: Any,
    loop: Any = None,
) -> None:
    target = _user_id_arg(command)
    if target is None:
        await message.answer(t.BAN_USAGE)
        return
    if is_admin(target, settings):
        await message.answer(t.BAN_ADMIN)
        return
    newly = await users.ban(target)
    cancelled = await jobs.cancel_user_queued(target)
    for job in cancelled:
        await finish_status(job, t.cancelled_by_admin_status(job.id), bot=bot, jobs=jobs, loop=loop)
    text = t.ban_done if newly else t.ban_already
    await message.answer(text(target, len(cancelled)))


@admin_only.message(Command("unban"))
async def on_unban(message: Message, command: CommandObject, users: Any) -> None:
    target = _user_id_arg(command)
    if target is None:
        await message.answer(t.UNBAN_USAGE)
        return
    if await users.unban(target):
        await message.answer(t.unban_done(target))
    else:
        await message.answer(t.unban_not_banned(target))


@admin_only.message(Command("pause"))
async def on_pause(message: Message, pause: Any) -> None:
    await message.answer(t.PAUSE_DONE if pause.pause() else t.PAUSE_ALREADY)


@admin_only.message(Command("resume"))
async def on_resume(message: Message, pause: Any) -> None:
    await message.answer(t.RESUME_DONE if pause.resume() else t.RESUME_NOT_PAUSED)


@refusal.message(Command(*ADMIN_COMMANDS))
async def on_not_admin(message: Message) -> None:
    await message.answer(t.NOT_ADMIN)
