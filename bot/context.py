"""What a handler may ask for: the application (:class:`AppContext`) and who is asking (:class:`Actor`).

``bot/__main__.py`` builds one frozen :class:`AppContext` and registers it as the Dispatcher's
workflow data under ``app``; :class:`bot.middlewares.actor.ActorMiddleware` adds ``actor`` to
every message and callback. So a handler reads::

    async def on_queue(message: Message, app: AppContext, actor: Actor) -> None: ...

and :class:`BotData` (aiogram's ``MiddlewareData`` extended with these keys) documents every key a
handler may take. Test doubles implement the same Protocols (``bot/backend.py``
``ModelInfo``/``VideoBackend``); nothing is typed ``Any``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram.dispatcher.middlewares.data import MiddlewareData

if TYPE_CHECKING:
    from bot.backend import ModelInfo
    from bot.config import Settings
    from bot.notify.status import StatusHub
    from bot.services.cancel import CancelService
    from bot.services.drafts import PromptDrafts
    from bot.services.pause import PauseSwitch
    from bot.services.policy import PolicyService
    from bot.services.requests import RequestService
    from bot.storage.jobs import JobStore
    from bot.storage.shares import ShareStore
    from bot.storage.users import User, UserStore


@dataclass(frozen=True)
class AppContext:
    """Everything the handlers share, built once at start."""

    settings: Settings
    jobs: JobStore
    users: UserStore
    model: ModelInfo
    """Defaults and bounds of the loaded model (operator overrides applied), the device line."""
    status: StatusHub
    pause: PauseSwitch
    requests: RequestService
    """The one way a job is admitted and created."""
    cancels: CancelService
    started_at: float
    drafts: PromptDrafts
    """Text requests: the prompt improver's "ask" mode, else straight to ``requests``."""
    policy: PolicyService
    """The content policy (``BLOCKED_WORDS_FILE``): checks, counts for /stats, admin logs."""
    shares: ShareStore
    """Share links: «🔗 Share» under a video, ``/start <token>``."""


@dataclass(frozen=True)
class Actor:
    """Who sent the update, decided once per update by the actor middleware."""

    user_id: int
    is_admin: bool
    locale: str
    """The language texts are written in for this person (``ru`` or ``en``)."""
    user: User | None = None
    """Their ``users`` row (None when the database could not be read)."""

    @property
    def banned(self) -> bool:
        return bool(self.user is not None and self.user.banned)


class BotData(MiddlewareData, total=False):
    """aiogram's handler data plus this bot's keys."""

    app: AppContext
    actor: Actor
