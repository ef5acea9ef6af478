"""/history: the user's last 10 jobs, each with a repeat button (handled in ``buttons.py``)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot import texts_user as t
from bot.jobs import Job, JobStore
from bot.keyboards import RepeatCb

router = Router(name="history")
router.message.filter(F.chat.type == "private")

HISTORY_LIMIT = 10
BUTTONS_PER_ROW = 5


def history_keyboard(jobs: list[Job]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for job in jobs:
        builder.button(text=t.history_button(job.id), callback_data=RepeatCb(job_id=job.id))
    builder.adjust(BUTTONS_PER_ROW)
    return builder.as_markup()


def history_text(jobs: list[Job]) -> str:
    lines = [t.HISTORY_HEADER]
    for index, job in enumerate(jobs, start=1):
        lines.append(
            t.history_line(index, job.id, job.prompt, job.status, job.options.seed, job.created_at)
        )
    return "\n".join(lines)


@router.message(Command("history"))
async def on_history(message: Message, jobs: JobStore) -> None:
    user_id = message.from_user.id if message.from_user else 0
    recent = await jobs.user_jobs(user_id, limit=HISTORY_LIMIT)
    if not recent:
        await message.answer(t.HISTORY_EMPTY)
        return
    await message.answer(history_text(recent), reply_markup=history_keyboard(recent))
