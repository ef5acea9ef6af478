"""`python -m bot`: the whole program, wired top to bottom.

settings → logging → database + migrations → model (loaded once) → Bot (self-hosted Bot API
server when ``TELEGRAM_API_URL`` is set; retries for 429/5xx/network) → status messages, delivery
and the generation loop → the services (requests, cancel, pause) → one :class:`AppContext` as the
Dispatcher's workflow data → middlewares → routers → startup (recover interrupted jobs, menus
and descriptions, start the loop and the video janitor, replay updates whose handling a crash
cut short) → updates received by long polling (``bot/telegram/polling.py``) or, with
``WEBHOOK_URL``, by a webhook (``bot/telegram/webhook.py``); either way each update is stored in
the update inbox before Telegram is told it arrived (``bot/telegram/updates.py``).

SIGTERM/SIGINT stop receiving, then the loop; the job being rendered stays ``running`` and
resumes at the next start.

``ROLE=frontend`` wires the same Telegram side without a model or a loop (torch is never
imported): the model's defaults and bounds come from the ``workers`` table, and what the workers
(``python -m bot.worker``) do reaches the users through the :class:`bot.notify.watcher.JobWatcher`.
Both roles run the watcher (workers of other processes may share the queue) and the reaper.

Several front ends may run at once (``bot/telegram/leadership.py``): the one holding the leader
lock polls and runs recovery, the replay, the watcher, the embedded worker and the janitor
(:meth:`App.lead`); the others stand by (or, in webhook mode, serve webhooks meanwhile) and take
over when it dies.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from pydantic import ValidationError

from bot.backend import (
    ConfiguredBackend,
    SettingsDoNotFit,
    VideoBackend,
    configure,
    load_backend,
)
from bot.config import Settings
from bot.context import AppContext
from bot.logs import register_secret, setup_logging
from bot.notify.alerts import AdminAlerts
from bot.notify.delivery import Delivery
from bot.notify.events import TelegramJobEvents
from bot.notify.recovery import notify_recovered, recover
from bot.notify.status import StatusHub
from bot.notify.watcher import JobWatcher
from bot.observability import Observability
from bot.observability.events import MetricsJobEvents
from bot.observability.health import Health, LoopWatch, updates_bound
from bot.observability.heartbeat import UpdatesHeartbeat
from bot.observability.metrics import BotMetrics
from bot.observability.server import MetricsServer
from bot.policy import ContentPolicy, PolicyFileError
from bot.services.pause import PauseSwitch
from bot.services.policy import PolicyService
from bot.storage import db
from bot.storage.engine import Database
from bot.storage.inbox import UpdateInbox
from bot.storage.janitor import Janitor
from bot.storage.jobs import JobStore, job_store
from bot.storage.leader import leader_lock
from bot.storage.policy import PolicyCounts
from bot.storage.previews import PreviewStore
from bot.storage.state import StateStore
from bot.storage.users import UserStore
from bot.storage.workers import RegisteredModel, WorkerStore
from bot.telegram.commands import set_profile
from bot.telegram.leadership import LeaderReceiver, Leadership, LeadershipLost
from bot.telegram.polling import Polling
from bot.telegram.session import RetryPolicy, make_session
from bot.telegram.updates import InboxDispatcher, Receiver, UpdateRunner
from bot.telegram.webhook import Webhook
from bot.wiring import build_context, setup_dispatcher, video_store
from bot.worker.cancels import CancelListener
from bot.worker.events import JobEventsFanout
from bot.worker.loop import GenerationLoop
from bot.worker.presence import WorkerPresence
from bot.worker.reaper import Reaper, reap_interval
from bot.worker.screening import VideoScreen, load_screen

log = logging.getLogger("bot")

DELIVERY_GRACE = 10.0
"""Seconds uploads in flight may finish after SIGTERM (the rest are sent at the next start)."""
REGISTRATION_POLL = 1.0
"""Seconds between two looks for a registered worker (``ROLE=frontend`` before any started)."""


@dataclass
class App:
    """Everything one running bot holds; tests drive it through :meth:`run` and :meth:`stop`."""

    context: AppContext
    bot: Bot
    dp: InboxDispatcher
    worker: GenerationLoop | None
    """The in-process worker (``ROLE=all``); None in a front end."""
    events: TelegramJobEvents
    janitor: Janitor
    conn: Database
    """The SQLite connection, or the PostgreSQL pool with ``DATABASE_URL``."""
    watcher: JobWatcher | None = None
    reaper: Reaper | None = None
    presence: WorkerPresence | None = None
    cancels: CancelListener | None = None
    """``LISTEN t2v_cancel`` for the in-process worker on PostgreSQL (a cancel made by another
    front end stops it at the next step, not at the next heartbeat)."""
    started: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    observability: Observability | None = None
    """Metrics, health checks, the updates heartbeat, and the ``METRICS_LISTEN`` server."""
    leadership: Leadership = field(init=False)
    """The leader lock: polling and the background duties run only while this process holds it."""
    runner: UpdateRunner = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.leadership = Leadership(
            leader_lock(
                settings.database_url_value,
                settings.database_path,
                settings.bot_token.get_secret_value(),
            )
        )
        inner = receiver_for(settings)
        receiver = LeaderReceiver(
            inner, self.leadership, self.lead, serve_meanwhile=isinstance(inner, Webhook)
        )
        self.runner = UpdateRunner(self.dp, self.bot, receiver)

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def jobs(self) -> JobStore:
        return self.context.jobs

    @property
    def users(self) -> UserStore:
        return self.context.users

    async def run(self, *, handle_signals: bool = True) -> None:
        """Receive updates until stopped (a signal or :meth:`stop`), then close the database."""
        try:
            await self.runner.run(handle_signals=handle_signals)
        finally:
            await self.leadership.release()
            await self.conn.close()
        if self.leadership.lost:
            raise LeadershipLost("the leader lock's database connection ended")

    async def stop(self) -> None:
        """What SIGTERM does: stop receiving, then run the shutdown hooks."""
        await self.runner.stop()

    def spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_startup(self, bot: Bot) -> None:
        """Every front end, leader or standby: the operator's endpoint, the menu.
        What must run once (:meth:`lead`) waits for the leader lock."""
        settings = self.settings
        if self.observability is not None and self.observability.server is not None:
            await self.observability.server.start()  # METRICS_LISTEN: /healthz, /metrics
        try:
            await set_profile(bot, settings.admin_ids)
        except Exception as error:  # a menu is a nicety: never a reason not to start
            log.warning("command menu not set: %s", error)

    async def lead(self, bot: Bot) -> None:
        """This process holds the leader lock (at start, or taking over from a dead leader): do
        what a restarted bot does, then the background duties, before any update is received."""
        settings, context = self.settings, self.context
        if self.watcher is not None:
            # Its first look notes what runs and what is generated already (recovery below
            # delivers those); any job generated after it is delivered by its next looks, so a
            # takeover while workers render leaves no gap.
            try:
                await self.watcher.poll()
            except Exception:
                log.exception("the job watcher's first look failed")
        worker_id = self.worker.worker_id if self.worker is not None else None
        recovered = await recover(context.jobs, self.events, settings.max_attempts, worker_id)
        if recovered:
            self.spawn(notify_recovered(context.jobs, context.status, recovered), "recovered")
        if self.presence is not None:
            await self.presence.start()
        if self.worker is not None:
            self.worker.start()
            if settings.database_url_value:
                self.cancels = CancelListener(settings.database_url_value, self.worker.cancel)
                self.cancels.start()
        if self.watcher is not None:
            self.watcher.start()
        if self.reaper is not None:
            # After recovery, which tells users of this process's interrupted jobs itself.
            # Idempotent, so any process may run it; workers run their own too.
            self.reaper.start()
        self.janitor.start()  # VIDEO_RETENTION_DAYS: a sweep now, then hourly
        # Updates stored but never fully handled (a kill -9 mid-handler): before new ones.
        await self.dp.replay_pending(bot)
        self.started.set()
        log.info("bot started (ROLE=%s); model on %s", settings.role, context.model.device_info())

    async def on_shutdown(self) -> None:
        log.info("stopping: the running job resumes at the next start")
        await self.janitor.stop()
        if self.reaper is not None:
            await self.reaper.stop()
        if self.watcher is not None:
            await self.watcher.stop()
        if self.cancels is not None:
            await self.cancels.stop()
        if self.worker is not None:
            await self.worker.stop()
        if self.presence is not None and self.leadership.leading:
            await self.presence.stop()
        await self.events.drain(DELIVERY_GRACE)
        for task in list(self._tasks):
            task.cancel()
        await self.context.status.close()
        self.context.drafts.close()
        if self.observability is not None and self.observability.server is not None:
            await self.observability.server.stop()
        await self.leadership.release()


def receiver_for(settings: Settings) -> Receiver:
    """Long polling, or the webhook server when ``WEBHOOK_URL`` is set."""
    if settings.webhook_url and settings.webhook_secret is not None:
        return Webhook(
            settings.webhook_url,
            settings.webhook_secret.get_secret_value(),
            settings.webhook_host_port,
        )
    return Polling(settings.polling_timeout)


async def build_app(
    settings: Settings,
    backend: VideoBackend | None = None,
    *,
    retry_policy: RetryPolicy | None = None,
) -> App:
    """Open the database, load the model (unless a backend is given; a front end loads none),
    and wire the bot."""
    conn = await db.open_database(settings.database_path, settings.database_url_value)
    try:
        await db.migrate(conn)
        model: ConfiguredBackend | RegisteredModel
        if settings.role == "frontend":
            model = await registered_model(WorkerStore(conn))
        elif backend is not None:
            model = configure(backend, settings)
        else:
            model = await load_backend(settings)
        # NSFW_MODEL screens videos where they are rendered: not in a front end.
        screen = await load_screen(settings) if isinstance(model, ConfiguredBackend) else None
        # aiosqlite's thread (or the pool's workers) would keep a failed start's process alive.
        return _wire(settings, conn, model, retry_policy, screen)
    except BaseException:
        await conn.close()
        raise


async def registered_model(workers: WorkerStore) -> RegisteredModel:
    """``ROLE=frontend``: the model's defaults, bounds and tiers as the most recently seen worker
    registered them (a front end loads no model); waits for the first worker ever to start."""
    logged = False
    while (row := await workers.latest()) is None:
        if not logged:
            log.warning("ROLE=frontend: no worker registered yet; start python -m bot.worker")
            logged = True
        await asyncio.sleep(REGISTRATION_POLL)
    log.info("front end: model limits from worker %s (%s)", row.worker_id, row.device)
    return RegisteredModel.from_dict(row.model_info)


def _wire(
    settings: Settings,
    conn: Database,
    model: ConfiguredBackend | RegisteredModel,
    retry_policy: RetryPolicy | None,
    screen: VideoScreen | None = None,
) -> App:
    """Everything after the database and the model: the Bot, the services, the Dispatcher."""
    settings.video_dir.mkdir(parents=True, exist_ok=True)
    jobs, users = job_store(conn), UserStore(conn)
    policy = PolicyService(ContentPolicy(settings.blocked_words_file), PolicyCounts(conn))
    heartbeat = UpdatesHeartbeat()
    if settings.webhook_url:  # updates come when users write: /healthz asks for none
        heartbeat.use_webhook()
    metrics = BotMetrics(
        model=settings.t2v_model,
        device=model.device_info().split(",")[0],  # the device's name, not its memory in use
        version=package_version(),
        memory_stats=model.memory_stats if isinstance(model, ConfiguredBackend) else lambda: None,
    )

    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=make_session(
            settings.telegram_api_url,
            retry_policy,
            observers=(heartbeat.observe, metrics.observe_api),
        ),
        default=DefaultBotProperties(parse_mode=None, link_preview_is_disabled=True),
    )
    status = StatusHub(
        bot,
        jobs,
        min_interval=settings.status_min_interval,
        queue_refresh_interval=settings.queue_refresh_interval,
        tiers=model.tiers,
        preview=settings.preview,
    )
    job_metrics = MetricsJobEvents(metrics, jobs)
    videos = video_store(settings)  # VIDEO_STORE: VIDEO_DIR, or an S3 bucket
    delivery = Delivery(bot, jobs, status, settings, observer=job_metrics, videos=videos)
    events = TelegramJobEvents(status, delivery)
    pause = PauseSwitch(StateStore(conn))
    watch = LoopWatch()
    fanout = JobEventsFanout(
        events, watch, job_metrics, AdminAlerts(bot, settings.admin_ids, users)
    )
    worker, presence = None, None
    if isinstance(model, ConfiguredBackend):  # ROLE=all: one worker in this process
        worker = GenerationLoop(
            jobs=jobs,
            backend=model,
            events=fanout,
            pause=pause,
            video_dir=settings.video_dir,
            upload_limit_bytes=settings.upload_limit_bytes,
            videos=videos,
            policy=policy,
            screen=screen,
            worker_id=settings.embedded_worker_id,
            lease_seconds=settings.lease_seconds,
        )
        presence = WorkerPresence(
            WorkerStore(conn), settings.embedded_worker_id, model, settings.lease_seconds / 3
        )
    # Workers in other processes: their changes reach users through the watcher.
    previews = PreviewStore(conn)  # their live previews (PREVIEW=on), through the database
    watcher = JobWatcher(
        jobs,
        fanout,
        status,
        local_worker_id=worker.worker_id if worker is not None else None,
        previews=previews if settings.preview else None,
    )
    reaper = Reaper(
        jobs, settings.max_attempts, reap_interval(settings.lease_seconds), previews=previews
    )
    janitor = Janitor(
        jobs,
        settings.video_dir,
        settings.video_retention_days,
        users=users,
        cap_bytes=settings.video_dir_max_bytes,
        data_retention_days=settings.data_retention_days,
        videos=videos,
    )
    context = build_context(
        settings=settings,
        jobs=jobs,
        users=users,
        model=model,
        status=status,
        pause=pause,
        worker=worker if worker is not None else watcher,
        room=janitor.make_room,
        improver=model.improver if isinstance(model, ConfiguredBackend) else None,
        policy=policy,
    )

    dp = setup_dispatcher(InboxDispatcher(inbox=UpdateInbox(conn), app=context), settings)
    health = Health(
        conn=conn,
        loop=worker if worker is not None else watcher,
        watch=watch,
        updates=heartbeat,
        stuck_seconds=settings.health_stuck_seconds,
        updates_seconds=updates_bound(settings.polling_timeout),
    )
    address = settings.metrics_address
    server = MetricsServer(*address, metrics=metrics, health=health, jobs=jobs) if address else None
    app = App(context, bot, dp, worker, events, janitor, conn, watcher, reaper, presence)
    app.observability = Observability(metrics, heartbeat, watch, health, server)
    health.standby = lambda: not app.leadership.leading
    dp.startup.register(app.on_startup)
    dp.shutdown.register(app.on_shutdown)
    return app


async def run(
    settings: Settings, backend: VideoBackend | None = None, *, handle_signals: bool = True
) -> None:
    """Build the bot and poll until SIGTERM/SIGINT."""
    app = await build_app(settings, backend)
    await app.run(handle_signals=handle_signals)


def package_version() -> str:
    """The installed distribution's version ("" from a bare source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ru-text2video-bot")
    except PackageNotFoundError:
        return ""


DESCRIPTION = """\
The Telegram bot that turns Russian text into short videos on this machine's GPU.

Settings are read from environment variables and from a .env file in the current directory
(the environment wins); README's "Configuration" table and .env.example list every name.
Without options the bot starts: database and migrations, the model, then long polling (or its
webhook server, with WEBHOOK_URL) until SIGTERM or Ctrl+C."""

EPILOG = """\
entry points of this package:
  python -m bot, t2v-bot          this bot (the same program; ROLE=frontend: Telegram only)
  python -m bot.worker            one GPU worker for a ROLE=frontend bot (no BOT_TOKEN)
  python -m pipeline, t2v         one video from the command line, no Telegram (--help)
  python -m bot.observability.probe
                                  the container health check: asks /healthz on METRICS_LISTEN

exit codes: 0 fine, 1 a check failed or the bot could not start, 2 invalid configuration"""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the configuration, the database (read-only: pending migrations are listed, "
        "not applied), VIDEO_DIR, the model paths (no weights loaded) and the token (getMe), "
        "one line each, then exit",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {package_version() or 'unknown'}"
    )
    return parser.parse_args(list(argv))


def load_settings(*, check: bool = False) -> Settings | None:
    """The settings, or None after saying which ones are wrong (never echoing a value)."""
    try:
        settings = Settings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as error:
        # pydantic never echoes a SecretStr, but say only which settings are wrong, in one place.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
        )
        if check:
            print(f"configuration: FAIL, {problems}")
        else:
            print(f"configuration error: {problems}", file=sys.stderr)
        return None
    if check:
        source = "the environment and .env" if Path(".env").is_file() else "the environment"
        print(f"configuration: ok, read from {source}")
    return settings


def cli() -> int:
    """The ``t2v-bot`` console script: :func:`main` with the command line's arguments."""
    return main(sys.argv[1:])


def main(argv: Sequence[str] = ()) -> int:
    """Entry point of ``python -m bot`` and ``t2v-bot``; returns the exit code."""
    args = parse_args(argv)
    settings = load_settings(check=args.check)
    if settings is None:
        return 2
    register_secret(settings.bot_token.get_secret_value())
    if settings.webhook_secret is not None:
        register_secret(settings.webhook_secret.get_secret_value())
    if settings.database_url_value:
        register_secret(settings.database_url_value)
        password = urlsplit(settings.database_url_value).password
        if password:
            register_secret(password)
    if args.check:
        from bot.check import check

        setup_logging("WARNING")
        return check(settings)
    setup_logging(settings.log_level)
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        from pipeline.errors import ModelLoadError

        if isinstance(error, ModelLoadError):
            log.error("cannot start: %s", error)
            return 1
        if isinstance(error, LeadershipLost):
            log.error("stopped: %s; start again to stand by", error)
            return 1
        if isinstance(error, PolicyFileError):
            log.error("cannot start: %s", error)
            return 1
        if isinstance(error, SettingsDoNotFit):
            log.error("cannot start: DEFAULT_*/MAX_* settings do not fit the model: %s", error)
            return 1
        log.exception("the bot stopped on an error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
