"""The front ends' leader lock (``bot/storage/leader.py``) and what a leader does when its
PostgreSQL session ends (``bot/telegram/leadership.py``): one holder at a time, freed when the
holder's file or session goes, taken again after a database restart, given up to a new holder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from bot.storage.leader import FileLeaderLock, PostgresLeaderLock, leader_lock
from bot.telegram.leadership import Leadership

TOKEN = "123456789:AAFakeTokenForTests_abcdefghijKLMNOP"


def end_sessions_holding(url: str, key: int) -> int:
    """What a dead machine or a restarted server does to the holder's session."""
    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF  # how pg_locks shows a bigint key
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND granted AND objsubid = 1 AND classid::bigint = %s AND objid::bigint = %s",
            (high, low),
        ).fetchall()
    return len(rows)


async def test_the_file_lock_has_one_holder_and_frees_with_it(tmp_path: Path) -> None:
    first = leader_lock(None, tmp_path / "bot.sqlite3", TOKEN)
    second = leader_lock(None, tmp_path / "bot.sqlite3", TOKEN)
    assert isinstance(first, FileLeaderLock)
    assert first.path == tmp_path / "bot.sqlite3.leader"
    assert await first.try_acquire()
    assert not await second.try_acquire()
    await first.release()  # what the kernel does when the holder dies
    assert await second.try_acquire()
    assert not await first.try_acquire()
    await second.release()


async def test_the_advisory_lock_has_one_holder_and_frees_with_its_session(
    postgres_url: str,
) -> None:
    first = leader_lock(postgres_url, Path("unused"), TOKEN)
    second = leader_lock(postgres_url, Path("unused"), TOKEN)
    other_bot = leader_lock(postgres_url, Path("unused"), "987:other")
    assert isinstance(first, PostgresLeaderLock) and isinstance(second, PostgresLeaderLock)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await other_bot.try_acquire()  # another bot's token: its own lock
        assert await first.check()
        assert await asyncio.to_thread(end_sessions_holding, postgres_url, first.key) == 1
        assert not await first.check()  # its session is gone: so is the lock
        assert await second.try_acquire()
        assert not await first.try_acquire()  # on a new connection: the standby leads now
    finally:
        for lock in (first, second, other_bot):
            await lock.release()


async def test_a_leader_takes_the_lock_again_after_its_session_ended(postgres_url: str) -> None:
    """A database restart ends the session; nobody else took the lock: still the leader."""
    lock = PostgresLeaderLock(postgres_url, "1")
    leadership = Leadership(lock, retry=0.05)
    stop = asyncio.Event()
    try:
        assert await leadership.acquire(stop)
        watch = asyncio.create_task(leadership.watch(stop))
        await asyncio.to_thread(end_sessions_holding, postgres_url, lock.key)
        await asyncio.sleep(0.5)
        assert leadership.leading and not leadership.lost and not stop.is_set()
        assert not await PostgresLeaderLock(postgres_url, "1").try_acquire()
        stop.set()
        await watch
    finally:
        await leadership.release()


async def test_a_leader_whose_lock_went_to_another_stops(postgres_url: str) -> None:
    lock, rival = PostgresLeaderLock(postgres_url, "2"), PostgresLeaderLock(postgres_url, "2")
    leadership = Leadership(lock, retry=0.2)
    stop = asyncio.Event()
    try:
        assert await leadership.acquire(stop)
        watch = asyncio.create_task(leadership.watch(stop))
        await asyncio.to_thread(end_sessions_holding, postgres_url, lock.key)
        assert await rival.try_acquire()  # the standby was quicker
        await asyncio.wait_for(watch, 5)
        assert stop.is_set() and leadership.lost and not leadership.leading
    finally:
        await leadership.release()
        await rival.release()


async def test_a_standby_waits_until_the_holder_goes(tmp_path: Path) -> None:
    holder = FileLeaderLock(tmp_path / "x.leader")
    assert await holder.try_acquire()
    standby = Leadership(FileLeaderLock(tmp_path / "x.leader"), retry=0.05)
    stop = asyncio.Event()
    waiting = asyncio.create_task(standby.acquire(stop))
    await asyncio.sleep(0.3)
    assert not waiting.done() and standby.state == "standby"
    await holder.release()
    assert await asyncio.wait_for(waiting, 5)
    assert standby.state == "leader"
    await standby.release()
