"""What the generation loop tells the rest of the bot about a job, as one small Protocol.

The loop itself knows nothing of Telegram: it claims, renders and writes the database, and
reports each turn of a job here. In the single process (``python -m bot``) the Telegram side
implements it (:class:`bot.notify.events.TelegramJobEvents`: status messages, delivery, final
words); tests pass a recorder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.storage.jobs import Job
    from pipeline.progress import Progress


class JobEvents(Protocol):
    async def started(self, job: Job) -> None:
        """``job`` was claimed and is about to render."""

    def progress(self, job: Job, progress: Progress) -> None:
        """A progress report (on the event loop, from the render thread); must not block."""

    async def generated(self, job: Job) -> None:
        """``job`` is ``generated``: its video waits to be delivered."""

    async def failed(self, job: Job, reason: str) -> None:
        """``job`` is ``failed`` with a ``FailReason`` code."""

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        """``job`` was cancelled while it rendered; ``announce``: nobody told the user yet."""

    def queue_moved(self) -> None:
        """The queue changed (a job started or ended): positions and ETAs moved."""
