"""`python -m bot`: the whole program, wired top to bottom.

settings → logging → database + migrations → model (loaded once) → Bot (self-hosted Bot API
server when ``TELEGRAM_API_URL`` is set; retries for 429/5xx/network) → status, delivery and the
generation loop → Dispatcher with its workflow data → middlewares → routers → startup (recover
interrupted jobs, command menus, start the loop and the video janitor, replay updates whose
handling a crash cut short) → long polling, each fetched batch stored in the update inbox before
Telegram is told it arrived (``bot/polling.py``).
SIGTERM/SIGINT stop polling, then the loop; the job being rendered stays ``running`` and resumes
at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from pydantic import ValidationError

from bot import db
from bot.backend import ConfiguredBackend, apply_settings, load_backend
from bot.commands import set_commands
from bot.config import Settings
from bot.handlers import setup_routers
from bot.jobs import JobStore
from bot.logs import register_secret, setup_logging
from bot.middlewares import setup_middlewares
from bot.pause import PauseState
from bot.polling import InboxDispatcher, UpdateInbox
from bot.session import RetryPolicy, make_session
from bot.users import UserStore
from bot.worker import Delivery, GenerationLoop, StatusHub
from bot.worker.janitor import Janitor

log = logging.getLogger("bot")


@dataclass
class App:
    """Everything one running bot holds; tests drive it through :meth:`run` and :meth:`stop`."""

    settings: Settings
    bot: Bot
    dp: Dispatcher
    jobs: JobStore
    users: UserStore
    loop: GenerationLoop
    conn: Any
    backend: ConfiguredBackend
    started: asyncio.Event = field(default_factory=asyncio.Event)
    janitor: Janitor | None = None

    async def run(self, *, handle_signals: bool = True) -> None:
        """Poll until stopped (a signal or :meth:`stop`), then close the database."""
        try:
            await self.dp.start_polling(
                self.bot,
                polling_timeout=self.settings.polling_timeout,
                handle_signals=handle_signals,
            )
        finally:
            await self.conn.close()

    async def stop(self) -> None:
        """What SIGTERM does: stop polling, which runs the shutdown hooks."""
        await self.dp.stop_polling()


async def build_app(
    settings: Settings, backend: Any = None, *, retry_policy: RetryPolicy | None = None
) -> App:
    """Open the database, load the model (unless a backend is given), and wire the bot."""
    conn = await db.connect(settings.database_path)
    try:
        await db.migrate(conn)
        backend = (
            apply_settings(backend, settings)
            if backend is not None
            else await load_backend(settings)
        )
    except BaseException:
        await conn.close()
        raise
    settings.video_dir.mkdir(parents=True, exist_ok=True)
    jobs, users = JobStore(conn), UserStore(conn)

    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=make_session(settings.telegram_api_url, retry_policy),
        default=DefaultBotProperties(parse_mode=None, link_preview_is_disabled=True),
    )
    status = StatusHub(
        bot,
        jobs,
        min_interval=settings.status_min_interval,
        queue_refresh_interval=settings.queue_refresh_interval,
    )
    pause = PauseState()
    delivery = Delivery(bot, jobs, status, settings)
    loop = GenerationLoop(
        bot=bot,
        jobs=jobs,
        backend=backend,
        settings=settings,
        status=status,
        delivery=delivery,
        pause=pause,
    )

    dp = InboxDispatcher(
        inbox=UpdateInbox(conn),
        jobs=jobs,
        users=users,
        settings=settings,
        backend=backend,
        loop=loop,
        pause=pause,
        started_at=time.time(),
    )
    setup_middlewares(dp)
    dp.include_routers(*setup_routers())
    janitor = Janitor(jobs, settings.video_dir, settings.video_retention_days)
    app = App(settings, bot, dp, jobs, users, loop, conn, backend, janitor=janitor)

    async def on_startup(bot: Bot) -> None:
        await bot.delete_webhook(
            drop_pending_updates=False
        )  # polling and a webhook exclude each other
        try:
            await set_commands(bot, settings.admin_ids)
        except Exception as error:  # a menu is a nicety: never a reason not to start
            log.warning("command menu not set: %s", error)
        await loop.recover()
        loop.start()
        janitor.start()  # VIDEO_RETENTION_DAYS: a sweep now, then hourly
        # Updates stored but never fully handled (a kill -9 mid-handler): before polling.
        await dp.replay_pending(bot, bots=[bot])
        app.started.set()
        log.info("bot started; model on %s", backend.device_info())

    async def on_shutdown() -> None:
        log.info("stopping: the running job resumes at the next start")
        await janitor.stop()
        await loop.stop()

    dp.startup.register(on_startup)
    dp.shutdown.register(on_shutdown)
    return app


async def run(settings: Settings, backend: Any = None, *, handle_signals: bool = True) -> None:
    """Build the bot and poll until SIGTERM/SIGINT."""
    app = await build_app(settings, backend)
    await app.run(handle_signals=handle_signals)


def main() -> int:
    """Entry point of ``python -m bot`` and ``t2v-bot``; returns the exit code."""
    try:
        settings = Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as error:
        # pydantic never echoes a SecretStr, but say only which settings are wrong, in one place.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
        )
        print(f"configuration error: {problems}", file=sys.stderr)
        return 2
    register_secret(settings.bot_token.get_secret_value())
    setup_logging(settings.log_level)
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        from pipeline.errors import ModelLoadError
        from pipeline.options import OptionError

        if isinstance(error, ModelLoadError):
            log.error("cannot start: %s", error)
            return 1
        if isinstance(error, OptionError):
            log.error("cannot start: DEFAULT_*/MAX_* settings do not fit the model: %s", error)
            return 1
        log.exception("the bot stopped on an error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
