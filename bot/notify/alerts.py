"""Admins told of a withheld video: a short message to each of ``ADMIN_IDS``, never the media.

A :class:`bot.worker.events.JobEvents` observer (``JobEventsFanout``): only ``failed`` with
``FailReason.WITHHELD`` does anything. Each message goes out in a task of its own, so a slow or
blocked admin chat never holds up the generation loop; a failed send is logged and dropped (the
log and /stats keep the record). The text names the job and the user ids only; each admin reads
it in the language chosen in their /settings (Russian otherwise).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.i18n import DEFAULT_LOCALE, normalize, use_locale
from bot.storage.jobs import FailReason
from bot.texts import policy as policy_texts

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.storage.jobs import Job
    from bot.storage.users import UserStore
    from pipeline.progress import Progress

log = logging.getLogger(__name__)


class AdminAlerts:
    def __init__(self, bot: Bot, admin_ids: Sequence[int], users: UserStore | None = None):
        self.bot = bot
        self.admin_ids = tuple(admin_ids)
        self.users = users
        self._tasks: set[asyncio.Task[Any]] = set()

    async def failed(self, job: Job, reason: str) -> None:
        if reason != FailReason.WITHHELD:
            return
        for admin_id in self.admin_ids:
            task = asyncio.create_task(self._tell(admin_id, job), name=f"alert-{job.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _tell(self, admin_id: int, job: Job) -> None:
        try:
            locale = DEFAULT_LOCALE
            if self.users is not None:
                row = await self.users.get(admin_id)
                locale = normalize(row.settings.get("language") if row else None)
            with use_locale(locale):
                text = policy_texts.admin_withheld(job.id, job.user_id)
            await self.bot.send_message(admin_id, text)
        except Exception as error:
            log.warning(
                "job %s: admin %s not told of the withheld video: %s", job.id, admin_id, error
            )

    async def drain(self) -> None:
        """Wait for the alerts in flight (tests; shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # The rest of JobEvents: nothing to say to admins.
    async def started(self, job: Job) -> None:
        return None

    def progress(self, job: Job, progress: Progress) -> None:
        return None

    async def generated(self, job: Job) -> None:
        return None

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        return None

    def queue_moved(self) -> None:
        return None
