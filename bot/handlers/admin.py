"""Operator commands: /stats, /ban, /unban, /pause, /resume — only for ``ADMIN_IDS``.

The router holds two sub-routers: ``admin_only`` (the ``IsAdmin`` filter sits on the router, so
no handler can forget it) and, after it, ``refusal``, which answers anyone else with a short
refusal that shows no data. Both work in private chats only: stats never land in a group.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message

from bot.charts import DEFAULT_DAYS, render_chart
from bot.context import AppContext
from bot.services.admission import start_of_utc_day
from bot.storage.janitor import disk_usage
from bot.storage.workers import WorkerStore
from bot.telegram.filters import IsAdmin
from bot.texts import admin as admin_texts
from bot.texts import policy as policy_texts

log = logging.getLogger(__name__)

ADMIN_COMMANDS = ("stats", "ban", "unban", "pause", "resume")


async def on_stats(message: Message, app: AppContext) -> None:
    now = app.jobs.clock()
    stats = await app.jobs.stats(start_of_utc_day(now))
    try:
        device = await asyncio.to_thread(app.model.device_info)
    except Exception as error:  # a stats command must not fail on a driver hiccup
        device = admin_texts.no_data(type(error).__name__)
    settings = app.settings
    disk = None
    try:
        files, size = await asyncio.to_thread(disk_usage, settings.video_dir)
        disk = admin_texts.disk(files, size, settings.video_retention_days)
    except Exception:  # a disk figure is a nicety
        log.exception("/stats: cannot measure VIDEO_DIR")
    text = admin_texts.stats(
        stats,
        device=device,
        uptime=now - app.started_at,
        paused=await app.pause.is_paused(),
        disk=disk,
    )
    try:  # what the content policy refused (policy_counts): today and in total
        text += "\n" + policy_texts.stats_line(await app.policy.counts.counts())
    except Exception:
        log.exception("/stats: cannot read the content policy's counts")
    try:
        text += "\n" + await workers_text(WorkerStore(app.jobs.conn))
    except Exception:  # a worker list is a nicety
        log.exception("/stats: cannot list the workers")
    await message.answer(text)
    buckets = await app.jobs.hourly(now - DEFAULT_DAYS * 86400)
    png = await render_chart(buckets, admin_texts.chart_labels(DEFAULT_DAYS), DEFAULT_DAYS)
    await message.answer_photo(
        BufferedInputFile(png, filename="stats.png"), caption=admin_texts.chart_caption()
    )


async def workers_text(workers: WorkerStore, shown: int = 10) -> str:
    """The workers (``workers`` table) most recently seen, with their device and last sign of life."""
    rows, now = await workers.all(), await workers.now()
    return admin_texts.workers(
        [
            (w.worker_id, w.device.split(",")[0], now - w.last_seen, w.stopped_at is not None)
            for w in rows[:shown]
        ]
    )


def user_id_arg(command: CommandObject) -> int | None:
    """A Telegram user id (a positive whole number) or, for someone who posts as a channel or a
    group, that chat's id (negative, e.g. ``-1001234567890``); None for anything else."""
    arg = (command.args or "").strip()
    digits = arg.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        return None
    value = int(arg)
    return value if 0 < abs(value) < 2**63 else None


async def on_ban(message: Message, command: CommandObject, app: AppContext) -> None:
    target = user_id_arg(command)
    if target is None:
        await message.answer(admin_texts.ban_usage())
        return
    if app.settings.is_admin(target):
        await message.answer(admin_texts.ban_admin())
        return
    newly = await app.users.ban(target)
    cancelled = await app.cancels.cancel_queued_of(target)
    text = admin_texts.ban_done if newly else admin_texts.ban_already
    await message.answer(text(target, len(cancelled)))


async def on_unban(message: Message, command: CommandObject, app: AppContext) -> None:
    target = user_id_arg(command)
    if target is None:
        await message.answer(admin_texts.unban_usage())
        return
    if await app.users.unban(target):
        await message.answer(admin_texts.unban_done(target))
    else:
        await message.answer(admin_texts.unban_not_banned(target))


async def on_pause(message: Message, app: AppContext) -> None:
    paused = await app.pause.pause()
    await message.answer(admin_texts.pause_done() if paused else admin_texts.pause_already())


async def on_resume(message: Message, app: AppContext) -> None:
    resumed = await app.pause.resume()
    await message.answer(admin_texts.resume_done() if resumed else admin_texts.resume_not_paused())


async def on_not_admin(message: Message) -> None:
    await message.answer(admin_texts.not_admin())


def router() -> Router:
    admin_only = Router(name="admin_only")
    admin_only.message.filter(F.chat.type == "private", IsAdmin())
    admin_only.message.register(on_stats, Command("stats"))
    admin_only.message.register(on_ban, Command("ban"))
    admin_only.message.register(on_unban, Command("unban"))
    admin_only.message.register(on_pause, Command("pause"))
    admin_only.message.register(on_resume, Command("resume"))

    refusal = Router(name="admin_refusal")
    refusal.message.filter(F.chat.type == "private")
    refusal.message.register(on_not_admin, Command(*ADMIN_COMMANDS))

    r = Router(name="admin")
    r.include_routers(admin_only, refusal)
    return r
