"""Shared machinery of the reliability tests: the fork server, bot processes, a faultier fake
Telegram, and read-only looks at the bot's database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.telegram import ApiError, Call, FakeTelegram, free_port, webhook_overrides

REPO = Path(__file__).resolve().parents[2]
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
FINAL = ("delivered", "failed", "cancelled", "undeliverable")
ADMIN_ID = 5000
FIGURES: dict[str, Any] = {}
"""Measured figures, printed at the end of the session (conftest) and quoted in docs/reliability.md."""


def base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        PYTHONPATH=str(REPO),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def mode_env(mode: str, port: int | None = None) -> dict[str, str]:
    """The variables that make a bot process receive in ``mode``: nothing for ``polling``;
    ``WEBHOOK_URL``/``WEBHOOK_SECRET``/``WEBHOOK_LISTEN`` on ``port`` (default: a free one) for
    ``webhook``. Give a restarted bot the same ``port``, as an operator's configuration would."""
    if mode == "polling":
        return {}
    assert mode == "webhook", mode
    overrides = webhook_overrides(free_port() if port is None else port)
    return {name.upper(): value for name, value in overrides.items()}


def bot_env(tg: FakeTelegram, data_dir: Path, **extra: Any) -> dict[str, str]:
    """The environment of one bot process: pointed at ``tg``, files under ``data_dir``."""
    env = base_env()
    env.update(
        BOT_TOKEN=tg.token,
        TELEGRAM_API_URL=tg.base_url,
        DATABASE_PATH=str(data_dir / "bot.sqlite3"),
        VIDEO_DIR=str(data_dir / "videos"),
        STATUS_MIN_INTERVAL="0.2",
        QUEUE_REFRESH_INTERVAL="0.2",
        POLLING_TIMEOUT="1",
        TRANSLATOR_MODEL="none",
        ADMIN_IDS=str(ADMIN_ID),
        LOG_LEVEL="INFO",
        REL_CWD=str(data_dir),
        REL_MARK_DIR=str(data_dir),
        # Budgets off: the fake model's default job is tiny, so the slow jobs these tests ask for
        # cost dozens of ordinary videos (tests/fakes/telegram.py bot_settings does the same).
        MAX_COST_PER_JOB="0",
        DAILY_COST_PER_USER="0",
        DAILY_COST_PER_CHAT="0",
    )
    env.update({k.upper(): str(v) for k, v in extra.items()})
    return env


@dataclass
class BotProcess:
    """One bot process started by the fork server."""

    pid: int
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def rc_file(self) -> Path:
        return Path(str(self.log) + ".rc")

    def returncode(self) -> int | None:
        try:
            return int(self.rc_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def alive(self) -> bool:
        return self.returncode() is None

    async def wait(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.returncode()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bot process {self.pid} still running after {timeout} s")
            await asyncio.sleep(0.02)
        return code

    async def kill9(self) -> int:
        """SIGKILL: no shutdown hook, no flush, no commit — a power cut for the bot."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        return await self.wait()

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for the graceful stop (SIGKILL if it takes longer than ``timeout``)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            return await self.wait(timeout)
        except TimeoutError:
            return await self.kill9()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def rss_bytes(self) -> int | None:
        try:
            import psutil

            return psutil.Process(self.pid).memory_info().rss
        except Exception:
            return None


class ForkServer:
    """``python -m tests.reliability.botproc``: imports the bot once, forks bot processes."""

    def __init__(self, sample_mp4: Path) -> None:
        self.sample_mp4 = sample_mp4
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.botproc"],
            cwd=REPO,
            env=base_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the bot fork server did not start")
        self.children: list[BotProcess] = []

    def spawn(self, env: dict[str, str], log: Path) -> BotProcess:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        env = {"REL_SAMPLE_MP4": str(self.sample_mp4), **env}
        self.proc.stdin.write(json.dumps({"env": env, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        child = BotProcess(reply["pid"], log)
        self.children.append(child)
        return child

    def close(self) -> None:
        for child in self.children:
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class FaultyTelegram(FakeTelegram):
    """The fake Bot API with two more faults around an upload, both "hang, then the bot dies":

    - ``hang_video = "before"``: the next sendVideo is held *before* Telegram accepts it (the
      upload is in flight); released, it fails and stores nothing — the user got nothing.
    - ``hang_video = "after"``: the next sendVideo is accepted (the user has the video) and its
      answer never comes back — the bot dies between Telegram's accept and its own commit.
    - ``hang_video = "drop_after"``: the next sendVideo is accepted, then the connection breaks
      before the answer (a proxy or mobile link dropping mid-response).

    With ``PREVIEW=on`` (the default) the video goes into the status photo by
    ``editMessageMedia``: the same faults apply to the next such edit that carries a video.
    ``hang_done = "after"``: the next «done» reply (a sendMessage replying to a video message) is
    accepted and its answer never comes back.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hang_video: str | None = None
        self.hang_done: str | None = None
        self.held: list[Call] = []
        self._release = asyncio.Event()

    def release(self) -> None:
        self.hang_video = None
        self.hang_done = None
        self._release.set()

    async def _m_sendVideo(self, call: Call) -> Any:
        return await self._hang(call, super()._m_sendVideo)

    async def _m_editMessageMedia(self, call: Call) -> Any:
        media = call.params.get("media")
        if not (isinstance(media, dict) and media.get("type") == "video"):
            return await super()._m_editMessageMedia(call)
        return await self._hang(call, super()._m_editMessageMedia)

    async def _m_sendMessage(self, call: Call) -> Any:
        reply = call.params.get("reply_parameters") or {}
        target = self.messages.get((call.chat_id, reply.get("message_id")))  # type: ignore[arg-type]
        if self.hang_done and target is not None and target.media == "video":
            self.hang_done = None
            result = await super()._m_sendMessage(call)
            self.held.append(call)
            await self._release.wait()
            return result
        return await super()._m_sendMessage(call)

    async def _hang(self, call: Call, send: Any) -> Any:
        mode, self.hang_video = self.hang_video, None
        if mode == "before":
            self.held.append(call)
            await self._release.wait()
            raise ApiError(500, "Internal Server Error: upload interrupted")
        result = await send(call)
        if mode == "after":
            self.held.append(call)
            await self._release.wait()
        if mode == "drop_after":  # accepted, then the connection breaks before the answer
            self.held.append(call)
            raise ConnectionAbortedError("dropped after accept")
        return result

    async def _handle(self, request: Any) -> Any:
        try:
            return await super()._handle(request)
        except ConnectionAbortedError:
            if request.transport is not None:
                request.transport.abort()
            raise

    # ---------------------------------------------------------------- what users received

    def video_messages(self) -> list[Any]:
        """Videos Telegram accepted (and so showed to the user), whether the bot heard back."""
        return [m for m in self.messages.values() if m.media == "video" and not m.deleted]

    def videos_per_job(self) -> Counter[int]:
        """Job id (from the «🔁» button's callback data ``rep:<id>``) → videos received."""
        counts: Counter[int] = Counter()
        for message in self.video_messages():
            job_id = job_of_markup(message.reply_markup)
            if job_id is not None:
                counts[job_id] += 1
        return counts

    def videos_per_request(self) -> Counter[tuple[int, int | None]]:
        return Counter((m.chat_id, m.reply_to) for m in self.video_messages())


def job_of_markup(markup: Any) -> int | None:
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            return None
    if not isinstance(markup, dict):
        return None
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = str(button.get("callback_data") or "")
            if data.startswith("rep:"):
                try:
                    return int(data.split(":", 1)[1])
                except ValueError:
                    return None
    return None


# -------------------------------------------------------------------- database (read-only)


def engine_env(database: Path | str) -> dict[str, str]:
    """The bot's variables for ``database``: ``DATABASE_URL`` for a PostgreSQL URL, nothing for
    the SQLite file (``bot_env`` already points ``DATABASE_PATH`` at ``data/bot.sqlite3``)."""
    return {"DATABASE_URL": database} if isinstance(database, str) else {}


def db_jobs(db_path: Path | str) -> list[dict[str, Any]]:
    """Every job row, as dicts (empty before the first start). ``db_path``: the SQLite file, or
    the ``postgresql://`` URL a bot was given as ``DATABASE_URL``."""
    if isinstance(db_path, str):
        return _postgres_jobs(db_path)
    if not db_path.exists():
        return []
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        try:
            rows = conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
        except sqlite3.OperationalError:
            return []
        return [dict(row) for row in rows]
    finally:
        conn.close()


def db_rows(database: Path | str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of any read query (``?`` placeholders) on the SQLite file (read-only; none before
    it exists) or the PostgreSQL URL."""
    if isinstance(database, str):
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(database, autocommit=True, row_factory=dict_row) as conn:
            return list(conn.execute(sql.replace("?", "%s").encode(), params).fetchall())
    if not database.exists():
        return []
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def _postgres_jobs(url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        if conn.execute("SELECT to_regclass('jobs') IS NULL AS missing").fetchone()["missing"]:
            return []
        return list(conn.execute("SELECT * FROM jobs ORDER BY id").fetchall())


async def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not met within {timeout} s")
        await asyncio.sleep(0.03)


async def wait_ready(tg: FakeTelegram, proc: BotProcess, timeout: float = 20.0) -> None:
    """Until ``proc`` receives (its startup — recovery, command menu — is done): it polls, or it
    set its webhook."""
    since = len(tg.calls)

    def polling() -> bool:
        if not proc.alive():
            raise RuntimeError(f"bot exited with {proc.returncode()}:\n{proc.output()[-3000:]}")
        return any(c.method in ("getUpdates", "setWebhook") for c in tg.calls[since:]) or (
            "bot started" in proc.output()
        )

    await wait_for(polling, timeout, "bot polling")


async def wait_all_final(
    db_path: Path | str, expected: int, proc: BotProcess, timeout: float = 20.0
) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        if not proc.alive():
            raise RuntimeError(f"bot exited with {proc.returncode()}:\n{proc.output()[-3000:]}")
        rows = db_jobs(db_path)
        if len(rows) >= expected and all(r["status"] in FINAL for r in rows):
            return rows
        return None

    try:
        return await wait_for(done, timeout, "all jobs final")
    except TimeoutError:
        rows = db_jobs(db_path)
        states = [(r["id"], r["status"], r["attempts"]) for r in rows]
        raise AssertionError(f"jobs not final: {states}\n{proc.output()[-4000:]}") from None


def replies_to(tg: FakeTelegram, chat_id: int) -> list[str]:
    """Texts (current, after edits) of the bot's messages in a chat, oldest first."""
    return [m.text or m.caption or "" for m in tg.sent(chat_id)]


def make_sample_mp4(path: Path) -> Path:
    """A small real MP4 (the pipeline's own exporter), used as every fake job's video."""
    import numpy as np

    from pipeline.export import export_mp4

    frames = np.zeros((9, 64, 64, 3), dtype=np.uint8)
    for index in range(9):
        frames[index, :, :, index % 3] = 20 * index
    export_mp4(frames, path, 8)
    return path
