"""Faults of PostgreSQL itself, with a front end and workers as real processes (the stage
backend, the fake Bot API, a pgserver database):

- a cancel's ``NOTIFY`` stops a worker within a step although its heartbeat comes once a minute,
  and its ``LISTEN`` connection comes back after the server ended it;
- a network partition of one worker (a TCP proxy that stops forwarding): the other worker takes
  the job after the lease, the cut-off worker stops on its own, and its late writes, delivered
  when the link heals, change nothing;
- the database restarted in immediate mode mid-render: every job ends and is delivered once,
  the pools and ``LISTEN`` reconnect, a cancel sent afterwards still arrives at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.worker.cancels import APPLICATION_NAME
from tests.fakes.postgres import PostgresServer
from tests.fakes.tcp_proxy import PartitionProxy
from tests.reliability.harness import (
    BotProcess,
    FaultyTelegram,
    ForkServer,
    db_jobs,
    wait_for,
    wait_ready,
)
from tests.scale.test_workers import (
    USER_A,
    USER_B,
    all_final,
    delivered_once,
    frontend_env,
    notices,
    stop_all,
    worker_env,
)

SLOW_BEATS = {"rel_heartbeat": 60, "lease_seconds": 300}
"""A heartbeat once a minute (and a lease that allows it): a cancel seen sooner came by NOTIFY."""


def steps_done(marks: Path) -> int:
    text = marks.read_text() if marks.exists() else ""
    return int(text) if text.strip() else 0  # "" while the worker rewrites it


async def cancel_arrives_at_once(
    tg: FaultyTelegram, db: str, data: Path, worker: BotProcess, user_id: int, job_no: int
) -> None:
    """``/cancel`` the job ``job_no`` rendering on ``worker`` (one with SLOW_BEATS): it stops
    within a step, told by the notification, not by a heartbeat."""
    marks = data / f"steps-job-{job_no}.mp4"
    await wait_for(lambda: steps_done(marks) >= 2, 30, "steps")
    notified = worker.output().count("cancel notified")
    tg.push_message("/cancel", user_id=user_id)

    def cancelled() -> bool:
        return any(r["id"] == job_no and r["status"] == "cancelled" for r in db_jobs(db))

    await wait_for(cancelled, 15, "cancelled")
    at_cancel = steps_done(marks)
    await wait_for(lambda: worker.output().count("cancel notified") > notified, 15, "notified")
    await wait_for(lambda: "cancelled while rendering" in worker.output(), 15, "worker stopped")
    assert steps_done(marks) <= at_cancel + 2, "rendered on after the cancel"
    assert "seen by the heartbeat" not in worker.output()


async def test_a_cancel_is_notified_at_once_and_listen_reconnects(
    fork_server: ForkServer, tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    data, db = tmp_path, postgres_url
    async with FaultyTelegram() as tg:
        env = worker_env(tg, data, db, "w1", rel_step_delay=0.5, rel_step_marks=1, **SLOW_BEATS)
        w1 = fork_server.spawn(env, data / "w1.log")
        fe = fork_server.spawn(frontend_env(tg, data, db, lease_seconds=300), data / "fe.log")
        procs = [w1, fe]
        try:
            await wait_ready(tg, fe)
            await wait_for(lambda: "(connection 1)" in w1.output(), 20, "w1 listening")
            assert postgres_server.terminate(APPLICATION_NAME) == 1
            await wait_for(lambda: "(connection 2)" in w1.output(), 20, "w1 listening again")
            tg.push_message("/gen кот играет на пианино --steps 40", user_id=USER_A)
            await cancel_arrives_at_once(tg, db, data, w1, USER_A, 1)
            assert tg.video_uploads(USER_A) == []
            # The worker is free at once: the next job renders and is delivered.
            tg.push_message("/gen собака в космосе --steps 2", user_id=USER_B)
            await wait_for(lambda: tg.video_uploads(USER_B), 30, "the next job delivered")
        finally:
            stop_all(*procs)


async def test_a_partitioned_worker_stops_on_its_own_and_is_fenced(
    fork_server: ForkServer, tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    data, db, lease = tmp_path, postgres_url, 3
    slow = {"rel_step_delay": 0.3, "lease_seconds": lease}
    async with FaultyTelegram() as tg, PartitionProxy(postgres_server.socket_path()) as proxy:
        env = worker_env(tg, data, proxy.url(db), "w1", rel_step_marks=1, **slow)
        w1 = fork_server.spawn(env, data / "w1.log")
        fe = fork_server.spawn(frontend_env(tg, data, db, lease_seconds=lease), data / "fe.log")
        procs: list[BotProcess] = [w1, fe]
        try:
            await wait_ready(tg, fe)
            tg.push_message("/gen кот играет на пианино --steps 20", user_id=USER_A)

            def rendering() -> bool:
                rows = db_jobs(db)
                return bool(rows) and rows[0]["stage"] == "denoise" and rows[0]["worker_id"] == "w1"

            await wait_for(rendering, 20, "w1 rendering")
            proxy.hold()  # w1 can no longer reach the database; nothing tells it so
            w2 = fork_server.spawn(worker_env(tg, data, db, "w2", **slow), data / "w2.log")
            procs.append(w2)
            tg.push_message("собака в космосе", user_id=USER_B)
            rows = await delivered_once(tg, db, *procs)
            assert (rows[0]["worker_id"], rows[0]["attempts"]) == ("w2", 2)
            # Still cut off, w1 stopped rendering on its own when it could not renew its lease.
            await wait_for(lambda: "lease not renewed" in w1.output(), 20, "w1 gave up")
            marks = data / "steps-job-1.mp4"
            stopped_at = steps_done(marks)
            await asyncio.sleep(1.5)
            assert steps_done(marks) == stopped_at < 20, "w1 rendered on while cut off"
            assert "nothing written" in w1.output()
            proxy.heal()  # its held statements (a heartbeat at least) reach the database now
            await asyncio.sleep(3.0)  # time for the late writes to land
            assert db_jobs(db) == rows  # its late writes changed nothing
            assert w1.alive()  # it goes on as a worker
            assert not (data / "videos" / "job-1.mp4").exists()  # it never encoded attempt 1
            assert sorted(tg.videos_per_job().values()) == [1, 1]
            assert notices(tg, USER_A) == 1 and notices(tg, USER_B) == 0
        finally:
            stop_all(*procs)


async def test_postgres_restarted_mid_render(
    fork_server: ForkServer, tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    data, db = tmp_path, postgres_url
    slow = {"rel_step_delay": 0.3, "rel_step_marks": 1, **SLOW_BEATS}
    async with FaultyTelegram() as tg:
        w1 = fork_server.spawn(worker_env(tg, data, db, "w1", **slow), data / "w1.log")
        w2 = fork_server.spawn(worker_env(tg, data, db, "w2", **slow), data / "w2.log")
        fe = fork_server.spawn(frontend_env(tg, data, db, lease_seconds=300), data / "fe.log")
        procs = [w1, w2, fe]
        try:
            await wait_ready(tg, fe)
            tg.push_message("/gen кот играет на пианино --steps 20", user_id=USER_A)
            tg.push_message("/gen собака в космосе --steps 20", user_id=USER_B)

            def both_rendering() -> bool:
                rows = db_jobs(db)
                return len(rows) == 2 and all(r["status"] == "running" for r in rows)

            await wait_for(both_rendering, 30, "both jobs rendering")
            await asyncio.to_thread(postgres_server.restart_immediate)
            rows = await delivered_once(tg, db, *procs)
            assert all(r["attempts"] == 1 for r in rows), rows  # nobody lost a lease
            for worker in (w1, w2):
                await wait_for(lambda w=worker: "(connection 2)" in w.output(), 30, "LISTEN")
            # A cancel after the restart still arrives at once.
            tg.push_message("/gen кот в шляпе --steps 40", user_id=USER_A)
            await wait_for(lambda: len(db_jobs(db)) == 3, 15, "third job written")
            third = db_jobs(db)[2]["id"]
            await wait_for(lambda: db_jobs(db)[2]["status"] == "running", 15, "third running")
            await wait_for(lambda: (data / f"steps-job-{third}.mp4").exists(), 15, "third steps")
            name = db_jobs(db)[2]["worker_id"]
            worker = w1 if name == "w1" else w2
            await cancel_arrives_at_once(tg, db, data, worker, USER_A, third)
            final = await all_final(db, 3, *procs)
            assert [r["status"] for r in final] == ["delivered", "delivered", "cancelled"]
            assert sorted(tg.videos_per_job().values()) == [1, 1]
        finally:
            stop_all(*procs)
