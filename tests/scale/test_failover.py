"""Front-end failover with real processes: a leader, a hot standby, kill -9 of the leader.

Front end A (``ROLE=frontend``, the leader: it holds the leader lock and polls) and front end B
(started while A lives: it stands by) share one database — SQLite (the lock is a ``flock`` next
to the file) or PostgreSQL (a session-level advisory lock) — with one ``python -m bot.worker``
and the fake Bot API, which answers 409 Conflict when a second process polls the token while the
first one's poll is open (as Telegram does). A is killed with SIGKILL while updates arrive and
while a job renders. B must take over within seconds, handle every update exactly once (one job
per update, none lost), deliver every job exactly once, and never have polled while A lived.

In webhook mode both front ends serve Telegram's calls at once (each stores what it receives in
the shared inbox); only the leader delivers, and after its kill -9 the other one does: one
video per job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakes.telegram import free_port
from tests.reliability.harness import (
    FIGURES,
    FINAL,
    BotProcess,
    FaultyTelegram,
    ForkServer,
    bot_env,
    db_jobs,
    mode_env,
    wait_for,
    wait_ready,
)
from tests.scale.test_workers import stop_all

LEASE = 2
POLLING = "receiving updates by long polling"
STANDBY = "standing by"


def env_for(tg: FaultyTelegram, data: Path, database_url: str | None, **extra: Any) -> dict:
    settings: dict[str, Any] = {"lease_seconds": LEASE, **extra}
    if database_url is not None:
        settings["database_url"] = database_url
    return bot_env(tg, data, **settings)


def frontend(tg: FaultyTelegram, data: Path, url: str | None, **extra: Any) -> dict:
    return env_for(tg, data, url, role="frontend", **extra)


def worker(tg: FaultyTelegram, data: Path, url: str | None) -> dict:
    env = env_for(tg, data, url, rel_entry="worker", worker_id="w1", rel_step_delay=0.3)
    del env["BOT_TOKEN"]
    return env


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path | str, str | None]:
    """Where the jobs are read from, and the ``DATABASE_URL`` (None: SQLite)."""
    if request.param == "sqlite":
        return tmp_path / "bot.sqlite3", None
    url = request.getfixturevalue("postgres_url")
    return url, url


async def healthz(port: int) -> tuple[int, str]:
    url = f"http://127.0.0.1:{port}/healthz"
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        return response.status, await response.text()


async def final_jobs(where: Path | str, expected: int, *procs: BotProcess) -> list[dict]:
    def done() -> list[dict] | None:
        rows = db_jobs(where)
        if len(rows) >= expected and all(r["status"] in FINAL for r in rows):
            return rows
        return None

    try:
        return await wait_for(done, 60, "all jobs final")
    except TimeoutError:
        states = [(r["id"], r["status"], r["attempts"]) for r in db_jobs(where)]
        logs = "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in procs)
        raise AssertionError(f"jobs not final: {states}\n{logs}") from None


def assert_each_once(tg: FaultyTelegram, rows: list[dict], update_ids: list[int]) -> None:
    """One job per update (none lost, none handled twice), each delivered, one video each."""
    assert sorted(r["update_id"] for r in rows) == sorted(update_ids), rows
    assert all(r["status"] == "delivered" for r in rows), [(r["id"], r["status"]) for r in rows]
    assert dict(tg.videos_per_job()) == {r["id"]: 1 for r in rows}


async def test_kill9_of_the_polling_leader_hands_over_to_the_standby(
    database: tuple[Path | str, str | None], fork_server: ForkServer, tmp_path: Path
) -> None:
    where, url = database
    data, users = tmp_path, iter(range(8101, 8200))
    update_ids: list[int] = []

    def push(text: str) -> None:
        tg.push_message(text, user_id=next(users))
        assert tg.last_update_id is not None
        update_ids.append(tg.last_update_id)

    async with FaultyTelegram() as tg:
        w1 = fork_server.spawn(worker(tg, data, url), data / "w1.log")
        a = fork_server.spawn(frontend(tg, data, url), data / "a.log")
        procs = [w1, a]
        try:
            await wait_ready(tg, a, 60)
            await wait_for(lambda: POLLING in a.output(), 20, "A polls")
            port = free_port()
            b_env = frontend(tg, data, url, metrics_listen=f"127.0.0.1:{port}")
            b = fork_server.spawn(b_env, data / "b.log")
            procs.append(b)
            await wait_for(lambda: STANDBY in b.output(), 30, "B stands by")
            status, text = await healthz(port)
            assert (status, text.splitlines()[0]) == (200, "standby"), text
            push("кот играет на пианино")
            await wait_for(
                lambda: any(r["status"] == "running" for r in db_jobs(where)), 20, "a render"
            )
            for text in ("собака в космосе", "лиса в лесу", "дождь над морем"):
                push(text)  # updates arriving as A dies: some stored, some not yet fetched
                await asyncio.sleep(0.05)
            rendering = [r["id"] for r in db_jobs(where) if r["status"] == "running"]
            before_kill = b.output()
            assert await a.kill9() == -9
            killed = time.monotonic()
            # B never polled while A lived (Telegram would have answered one of them 409).
            assert POLLING not in before_kill, before_kill[-2000:]
            assert rendering, "the kill was meant to land while a job renders"
            for text in ("сова ночью", "поезд в горах"):
                push(text)
            await wait_for(lambda: POLLING in b.output(), 20, "B takes over")
            FIGURES.setdefault("failover_kill9_to_polling_s", {})[
                "postgres" if url else "sqlite"
            ] = round(time.monotonic() - killed, 2)
            rows = await final_jobs(where, len(update_ids), *procs)
            await wait_for(lambda: len(tg.video_messages()) >= len(rows), 10, "videos sent")
            assert_each_once(tg, rows, update_ids)
            assert tg.poll_conflicts == [], "two processes polled the token at once"
            assert "leader: this front end holds" in b.output()
            status, text = await healthz(port)
            assert (status, text.splitlines()[0]) == (200, "ok"), text
            assert "front end: ok, leader" in text
        finally:
            stop_all(*procs)


async def test_webhook_front_ends_serve_at_once_and_deliver_each_video_once(
    database: tuple[Path | str, str | None], fork_server: ForkServer, tmp_path: Path
) -> None:
    where, url = database
    data, users = tmp_path, iter(range(8201, 8300))
    update_ids: list[int] = []

    def push(text: str) -> None:
        tg.push_message(text, user_id=next(users))
        assert tg.last_update_id is not None
        update_ids.append(tg.last_update_id)

    async with FaultyTelegram() as tg:
        a_env = frontend(tg, data, url, **{k.lower(): v for k, v in mode_env("webhook").items()})
        b_env = frontend(tg, data, url, **{k.lower(): v for k, v in mode_env("webhook").items()})
        w1 = fork_server.spawn(worker(tg, data, url), data / "w1.log")
        a = fork_server.spawn(a_env, data / "a.log")
        procs = [w1, a]
        try:
            await wait_for(lambda: "bot started" in a.output(), 60, "A leads")
            await wait_for(lambda: tg.webhook is not None, 20, "A's webhook set")
            b = fork_server.spawn(b_env, data / "b.log")
            procs.append(b)
            await wait_for(lambda: STANDBY in b.output(), 30, "B stands by")
            await wait_for(
                lambda: tg.webhook is not None and tg.webhook.url == b_env["WEBHOOK_URL"],
                20,
                "B's webhook set",
            )
            push("кот играет на пианино")  # served by B (the URL Telegram has now)
            push("собака в космосе")
            await wait_for(lambda: len(db_jobs(where)) == 2, 20, "B stored its updates")
            tg.webhook = dataclasses.replace(tg.webhook, url=a_env["WEBHOOK_URL"])
            push("лиса в лесу")  # served by A
            push("дождь над морем")
            await wait_for(lambda: len(db_jobs(where)) == 4, 20, "A stored its updates")
            await wait_for(
                lambda: any(r["status"] == "running" for r in db_jobs(where)), 20, "a render"
            )
            assert await a.kill9() == -9
            tg.webhook = dataclasses.replace(tg.webhook, url=b_env["WEBHOOK_URL"])
            push("сова ночью")
            rows = await final_jobs(where, len(update_ids), *procs)
            await wait_for(lambda: len(tg.video_messages()) >= len(rows), 10, "videos sent")
            assert_each_once(tg, rows, update_ids)
            assert "leader: this front end holds" in b.output()
        finally:
            stop_all(*procs)
