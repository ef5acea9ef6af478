"""/history: the user's last 10 jobs, each with a repeat button (handled in ``buttons.py``)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.context import Actor, AppContext
from bot.storage.jobs import Job
from bot.telegram.keyboards import RepeatCb
from bot.texts import queue as queue_texts
from bot.texts.photos import PHOTO_MARK

HISTORY_LIMIT = 10
BUTTONS_PER_ROW = 5


def history_keyboard(jobs: list[Job]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for job in jobs:
        builder.button(
            text=queue_texts.history_button(job.number), callback_data=RepeatCb(job_id=job.id)
        )
    builder.adjust(BUTTONS_PER_ROW)
    return builder.as_markup()


def history_text(jobs: list[Job], photo_jobs: set[int] | frozenset[int] = frozenset()) -> str:
    """The list; ``photo_jobs``: ids of photo requests, marked 🖼 before their caption."""
    lines = [queue_texts.history_header()]
    for index, job in enumerate(jobs, start=1):
        mark = PHOTO_MARK if job.id in photo_jobs else ""
        lines.append(
            queue_texts.history_line(
                index, job.number, job.prompt, job.status, job.options.seed, job.created_at, mark
            )
        )
    return "\n".join(lines)


async def on_history(message: Message, app: AppContext, actor: Actor) -> None:
    recent = await app.jobs.user_jobs(actor.user_id, limit=HISTORY_LIMIT)
    if not recent:
        await message.answer(queue_texts.history_empty())
        return
    photo_jobs = await app.requests.images.with_images(job.id for job in recent)
    await message.answer(history_text(recent, photo_jobs), reply_markup=history_keyboard(recent))


def router() -> Router:
    r = Router(name="history")
    r.message.filter(F.chat.type == "private")
    r.message.register(on_history, Command("history"))
    return r
