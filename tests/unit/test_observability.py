"""bot/observability without a running bot: the health rules, the heartbeat, step timing, the
metrics' labels and registries, the events fan-out, and ``METRICS_LISTEN`` parsing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from pydantic import ValidationError

from bot.backend import configure, memory_stats
from bot.config import Settings, parse_listen
from bot.observability.events import StepTimer
from bot.observability.health import STUCK_FACTOR, Health, LoopWatch, updates_bound
from bot.observability.heartbeat import UpdatesHeartbeat
from bot.observability.metrics import BotMetrics, outcome_reason
from bot.observability.probe import probe_url
from bot.storage import db
from bot.worker.events import JobEventsFanout
from pipeline.progress import Progress, Stage
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import TOKEN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def job(job_id: int = 1) -> Any:
    return SimpleNamespace(id=job_id, attempts=1, created_at=0.0)


def denoise(step: int, elapsed: float) -> Progress:
    return Progress(Stage.DENOISE, step, 10, elapsed)


# ---------------------------------------------------------------- heartbeat


def test_heartbeat_hears_only_successful_get_updates() -> None:
    clock = Clock()
    beat = UpdatesHeartbeat(clock)
    clock.now += 30
    assert beat.age() == 30  # since creation before the first beat
    beat.observe("sendMessage", "ok")
    beat.observe("getUpdates", "network_error")
    assert beat.last_seen is None
    beat.observe("getUpdates", "ok")
    clock.now += 4
    assert beat.age() == 4


# ---------------------------------------------------------------- health rules


class Loop:
    running = True


async def health_with(tmp_path: Path, **kwargs: Any) -> tuple[Health, Clock, Any]:
    conn = await db.connect(tmp_path / "bot.sqlite3")
    await db.migrate(conn)
    clock = Clock()
    health = Health(
        conn=conn, loop=Loop(), watch=LoopWatch(clock), updates=UpdatesHeartbeat(clock), **kwargs
    )
    return health, clock, conn


async def test_updates_must_arrive_unless_webhook(tmp_path: Path) -> None:
    health, clock, conn = await health_with(tmp_path, updates_seconds=140)
    try:
        health.updates.beat()
        clock.now += 139
        assert health.updates_arrive().ok
        clock.now += 2
        check = health.updates_arrive()
        assert not check.ok and "no successful getUpdates for 141 s" in check.detail
        health.updates.use_webhook()
        assert health.updates_arrive().ok and health.updates_arrive().detail == "webhook mode"
        assert all(c.ok for c in await health.checks())
    finally:
        await conn.close()


def test_updates_bound_grows_with_the_polling_timeout() -> None:
    assert updates_bound(10) == 140
    assert updates_bound(50) == 220


async def test_stuck_bound_is_the_floor_or_twenty_typical_steps(tmp_path: Path) -> None:
    health, clock, conn = await health_with(tmp_path, stuck_seconds=600)
    watch = health.watch
    try:
        assert health.generation_loop().detail == "idle"
        await watch.started(job())
        assert health.stuck_bound() == 600  # nothing measured yet: the floor
        for step in range(11):  # 40 s per step: 20 steps = 800 s > the floor
            clock.now += 40 if step else 0
            watch.progress(job(), denoise(step, 40.0 * step))
        assert watch.typical_step() == 40
        assert health.stuck_bound() == STUCK_FACTOR * 40
        clock.now += 799
        assert health.generation_loop().ok
        clock.now += 2
        check = health.generation_loop()
        assert not check.ok and "job 1 made no progress for 801.0 s (bound 800.0 s)" in check.detail
        await watch.generated(job())
        assert health.generation_loop().ok  # idle again: nothing to be stuck on
        Loop.running = False
        assert health.generation_loop().detail == "not running"
    finally:
        Loop.running = True
        await conn.close()


# ---------------------------------------------------------------- step timing


def test_step_timer_splits_skipped_reports_and_ignores_other_jobs() -> None:
    timer = StepTimer()
    assert timer.feed(1, denoise(0, 1.0)) == []
    assert timer.feed(1, denoise(1, 1.5)) == [0.5]
    assert timer.feed(1, denoise(3, 2.5)) == [0.5, 0.5]  # two steps in one report
    assert timer.feed(1, Progress(Stage.DECODE, 0, 1, 3.0)) == []
    assert timer.feed(2, denoise(4, 9.0)) == []  # another job: a fresh start
    assert timer.feed(2, denoise(2, 9.5)) == []  # backwards: a new denoise pass


# ---------------------------------------------------------------- metrics


def test_outcome_labels_are_bounded() -> None:
    assert outcome_reason("delivered", None) == ("delivered", "none")
    assert outcome_reason("failed", "out_of_memory") == ("failed", "out_of_memory")
    assert outcome_reason("failed", "some new code") == ("failed", "other")
    assert outcome_reason("undeliverable", "blocked") == ("undeliverable", "blocked")
    assert outcome_reason("cancelled", "generation") == ("cancelled", "none")


def test_each_bot_has_its_own_registry() -> None:
    first, second = BotMetrics(model="a"), BotMetrics(model="b")
    first.stage("denoise", 2.0)
    first.observe_api("sendVideo", "server_error")
    first.observe_api("sendVideo", "ok")
    one, two = generate_latest(first.registry).decode(), generate_latest(second.registry).decode()
    assert 't2v_stage_seconds_count{stage="denoise"} 1.0' in one
    assert 't2v_stage_seconds_count{stage="denoise"} 0.0' in two
    assert 't2v_telegram_errors_total{kind="5xx",method="sendVideo"} 1.0' in one
    assert 'model="a"' in one and 'model="b"' in two
    assert "t2v_gpu_memory" not in one  # no memory source: no sample


def test_memory_stats_come_from_the_backend_when_it_has_them() -> None:
    settings = Settings(_env_file=None, bot_token=TOKEN)  # type: ignore[call-arg]
    assert memory_stats(configure(FakeBackend(), settings)) is None

    class WithMemory(FakeBackend):
        def memory_stats(self) -> dict[str, int]:
            return {"allocated": 5, "reserved": 7}

    backend = configure(WithMemory(), settings)
    assert memory_stats(backend) == {"allocated": 5, "reserved": 7}
    text = generate_latest(BotMetrics(memory_stats=backend.memory_stats).registry).decode()
    assert "t2v_gpu_memory_allocated_bytes 5.0" in text
    assert "t2v_gpu_memory_reserved_bytes 7.0" in text


def test_pipeline_memory_stats_on_cpu_is_none() -> None:
    from pipeline.generator import memory_stats as pipeline_memory_stats

    assert pipeline_memory_stats("cpu") is None


# ---------------------------------------------------------------- events fan-out


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def _note(self, name: str) -> None:
        self.calls.append(name)
        if self.fail:
            raise RuntimeError(f"{name} broke")

    async def started(self, job: Any) -> None:
        self._note("started")

    def progress(self, job: Any, progress: Any) -> None:
        self._note("progress")

    async def generated(self, job: Any) -> None:
        self._note("generated")

    async def failed(self, job: Any, reason: str) -> None:
        self._note("failed")

    async def cancelled(self, job: Any, *, announce: bool) -> None:
        self._note(f"cancelled:{announce}")

    def queue_moved(self) -> None:
        self._note("queue_moved")


async def test_fanout_tells_everyone_and_contains_observer_errors() -> None:
    primary, broken, after = Recorder(), Recorder(fail=True), Recorder()
    events = JobEventsFanout(primary, broken, after)
    await events.started(job())
    events.progress(job(), denoise(1, 1.0))
    await events.generated(job())
    await events.failed(job(), "generation")
    await events.cancelled(job(), announce=True)
    events.queue_moved()
    expected = ["started", "progress", "generated", "failed", "cancelled:True", "queue_moved"]
    assert primary.calls == broken.calls == after.calls == expected


async def test_fanout_lets_the_primary_errors_through() -> None:
    events = JobEventsFanout(Recorder(fail=True), Recorder())
    with pytest.raises(RuntimeError, match="generated broke"):
        await events.generated(job())


# ---------------------------------------------------------------- METRICS_LISTEN


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        (":9464", ("0.0.0.0", 9464)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9464", ("::1", 9464)),
        (" localhost:80 ", ("localhost", 80)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9464x", "localhost", "host:99999", "host:port"])
def test_bad_metrics_listen_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ValidationError, match=r"(?i)metrics_listen"):
        Settings(_env_file=None, bot_token=TOKEN, metrics_listen=value)  # type: ignore[call-arg]


def test_metrics_listen_blank_is_off() -> None:
    settings = Settings(_env_file=None, bot_token=TOKEN, metrics_listen=" ")  # type: ignore[call-arg]
    assert settings.metrics_address is None
    assert settings.health_stuck_seconds == 600


def test_probe_asks_loopback_for_a_wildcard_host() -> None:
    assert probe_url("0.0.0.0:9464") == "http://127.0.0.1:9464/healthz"
    assert probe_url(":9") == "http://127.0.0.1:9/healthz"
    assert probe_url("[::1]:9464") == "http://[::1]:9464/healthz"
    assert probe_url("10.0.0.5:80") == "http://10.0.0.5:80/healthz"
