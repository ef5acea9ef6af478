"""bot/worker/janitor.py: VIDEO_RETENTION_DAYS deletes old videos, never a file still needed.

Jobs get old timestamps from a controlled clock and their files old mtimes (``os.utime``); the
janitor runs with its own clock at ``NOW``. The last tests run the real bot against the fake Bot
API: the janitor sweeps at start while recovery sends an old generated video.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import db
from bot.storage.janitor import DAY, Janitor, disk_usage, sweep
from bot.storage.jobs import Job, JobStore
from bot.telegram.keyboards import RepeatCb
from bot.texts import admin as admin_texts
from pipeline.options import GenerationOptions
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import FakeTelegram

NOW = 1_800_000_000.0
OLD = NOW - 10 * DAY
RECENT = NOW - 2 * DAY
VIDEO_BYTES, THUMB_BYTES = 3000, 200
ALICE = 1001


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def options(seed: int = 42) -> GenerationOptions:
    return GenerationOptions(
        prompt="кот", negative_prompt="", steps=4, seed=seed, frames=9, fps=8, width=64,
        height=64, guidance=5.0,
    )  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[JobStore]:
    conn = await db.connect(tmp_path / "bot.sqlite3")
    await db.migrate(conn)
    yield JobStore(conn, clock=Clock())
    await conn.close()


@pytest.fixture
def video_dir(tmp_path: Path) -> Path:
    path = tmp_path / "videos"
    path.mkdir()
    return path


def write(path: Path, size: int, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    os.utime(path, (mtime, mtime))
    return path


async def make_job(
    store: JobStore,
    video_dir: Path,
    status: str,
    at: float,
    *,
    video: Path | None = None,
    thumb: Path | None = None,
) -> Job:
    """A job that reached ``status`` at time ``at`` (its files written then, too)."""
    store.clock.now = at  # type: ignore[attr-defined]
    job = await store.create(ALICE, ALICE, 1, "кот", options())
    if status != "queued":
        claimed = await store.claim_next()
        assert claimed is not None and claimed.id == job.id
    if status not in ("queued", "running", "cancelled"):
        video = video or video_dir / f"job-{job.id}.mp4"
        thumb = thumb or video.with_suffix(".jpg")
        if video.parent.exists() and not video.exists():
            write(video, VIDEO_BYTES, at)
        if thumb.parent.exists() and not thumb.exists():
            write(thumb, THUMB_BYTES, at)
        meta = {"path": str(video), "thumbnail": str(thumb), "width": 64, "seed": 42}
        assert await store.mark_generated(job.id, str(video), meta, 1.5)
    if status == "delivered":
        assert await store.mark_delivered(job.id, "FILE_ID", 77)
    elif status == "failed":
        assert await store.mark_failed(job.id, "слишком большое")
    elif status == "undeliverable":
        assert await store.mark_undeliverable(job.id, "blocked")
    elif status == "cancelled":
        assert await store.cancel(job.id) is not None
    store.clock.now = NOW  # type: ignore[attr-defined]
    found = await store.get(job.id)
    assert found is not None and found.status == status
    return found


def janitor(store: JobStore, video_dir: Path, days: int = 7) -> Janitor:
    return Janitor(store, video_dir, days, clock=lambda: NOW)


def files_of(video_dir: Path, job_id: int) -> list[Path]:
    return [video_dir / f"job-{job_id}.mp4", video_dir / f"job-{job_id}.jpg"]


async def test_old_final_jobs_lose_their_files_and_say_so(
    store: JobStore, video_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = [
        await make_job(store, video_dir, s, OLD) for s in ("delivered", "failed", "undeliverable")
    ]
    recent = await make_job(store, video_dir, "delivered", RECENT)
    generated = await make_job(store, video_dir, "generated", OLD - 30 * DAY)
    running = await make_job(store, video_dir, "running", OLD)
    queued = await make_job(store, video_dir, "queued", OLD)
    # A previous attempt's leftovers of jobs still active, as old as can be: never touched.
    write(video_dir / f"job-{running.id}.mp4", VIDEO_BYTES, OLD - 30 * DAY)
    write(video_dir / f".job-{queued.id}.part.mp4", VIDEO_BYTES, OLD - 30 * DAY)

    with caplog.at_level(logging.INFO, logger="bot.storage.janitor"):
        report = await janitor(store, video_dir).run_once()

    assert report is not None
    assert sorted(report.jobs) == [job.id for job in old]
    assert (report.files, report.orphans, report.errors) == (6, 0, 0)
    assert report.bytes == 3 * (VIDEO_BYTES + THUMB_BYTES)
    for job in old:
        assert not any(path.exists() for path in files_of(video_dir, job.id))
        now = await store.get(job.id)
        assert now is not None and now.status == job.status  # only the files went
        assert now.video_path is None
        assert now.video_meta is not None
        assert now.video_meta["path"] is None and now.video_meta["thumbnail"] is None
        assert now.video_meta["files_deleted_at"] == NOW
        assert now.video_meta["width"] == 64 and now.video_meta["seed"] == 42  # facts stay
        assert now.file_id == job.file_id and now.finished_at == job.finished_at
    assert (await store.get(old[0].id)).file_id == "FILE_ID"  # type: ignore[union-attr]
    for job in (recent, generated):
        assert all(path.exists() for path in files_of(video_dir, job.id))
        assert await store.get(job.id) == job
    assert (video_dir / f"job-{running.id}.mp4").exists()
    assert (video_dir / f".job-{queued.id}.part.mp4").exists()
    line = next(r.getMessage() for r in caplog.records if "deleted" in r.getMessage())
    assert "deleted 6 files" in line and "0.0 MB freed" in line and "3 jobs" in line

    again = await janitor(store, video_dir).run_once()
    assert again is not None and (again.files, again.jobs, again.bytes) == (0, [], 0)
    assert [job.id for job in await store.expired_files(NOW)] == [recent.id]


async def test_a_generated_job_keeps_its_file_however_old(store: JobStore, video_dir: Path) -> None:
    """Its video is sent from the file after a restart: neither rule may take it."""
    job = await make_job(store, video_dir, "generated", NOW - 365 * DAY)
    report = await janitor(store, video_dir, days=1).run_once()
    assert report is not None and report.files == 0
    assert all(path.exists() for path in files_of(video_dir, job.id))
    assert await store.expired_files(NOW) == []
    refs, keep = await store.file_references()
    assert job.id in keep and str(video_dir / f"job-{job.id}.mp4") in refs


async def test_orphans_older_than_retention_are_deleted(store: JobStore, video_dir: Path) -> None:
    cancelled = await make_job(store, video_dir, "cancelled", OLD)  # cancelled after rendering
    cancelled_files = [write(p, VIDEO_BYTES, OLD) for p in files_of(video_dir, cancelled.id)]
    old_orphans = [
        write(video_dir / "job-500.mp4", VIDEO_BYTES, OLD),
        write(video_dir / "job-500.jpg", THUMB_BYTES, OLD),
        write(video_dir / ".job-501.part.mp4", VIDEO_BYTES, OLD),  # a crash mid-encode
    ]
    recent_orphan = write(video_dir / "job-502.mp4", VIDEO_BYTES, RECENT)
    # Not the bot's own names: never deleted, however old (the database may live here too).
    foreign = [
        write(video_dir / "bot.sqlite3", 100, OLD),
        write(video_dir / "notes.txt", 100, OLD),
        write(video_dir / "job-503.mp4.bak", 100, OLD),
    ]
    (video_dir / "job-504.mp4").mkdir()  # a folder named like a video
    recent_job = await make_job(store, video_dir, "delivered", RECENT)

    report = await janitor(store, video_dir).run_once()

    assert report is not None
    assert (report.files, report.orphans, report.jobs) == (5, 5, [])
    assert report.bytes == 4 * VIDEO_BYTES + THUMB_BYTES
    assert not any(p.exists() for p in [*cancelled_files, *old_orphans])
    assert recent_orphan.exists() and all(p.exists() for p in foreign)
    assert (video_dir / "job-504.mp4").is_dir()
    assert all(p.exists() for p in files_of(video_dir, recent_job.id))


async def test_a_referenced_file_is_not_an_orphan_even_with_an_old_mtime(
    store: JobStore, video_dir: Path
) -> None:
    """A job finished yesterday whose file was written long ago (e.g. restored from a backup)."""
    job = await make_job(store, video_dir, "delivered", RECENT)
    for path in files_of(video_dir, job.id):
        os.utime(path, (OLD, OLD))
    report = await janitor(store, video_dir).run_once()
    assert report is not None and report.files == 0
    assert all(p.exists() for p in files_of(video_dir, job.id))


async def test_retention_zero_keeps_everything(store: JobStore, video_dir: Path) -> None:
    job = await make_job(store, video_dir, "delivered", NOW - 1000 * DAY)
    orphan = write(video_dir / "job-900.mp4", VIDEO_BYTES, NOW - 1000 * DAY)
    keeper = janitor(store, video_dir, days=0)
    assert await keeper.run_once() is None
    keeper.start()
    assert keeper._task is None  # nothing scheduled at all
    await keeper.stop()
    assert orphan.exists() and all(p.exists() for p in files_of(video_dir, job.id))
    assert await store.get(job.id) == job


async def test_paths_outside_video_dir_are_left_alone(
    store: JobStore, video_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = await make_job(store, video_dir, "delivered", OLD, video=elsewhere / "a.mp4")
    traversal = await make_job(
        store, video_dir, "delivered", OLD, video=video_dir / ".." / "elsewhere" / "b.mp4"
    )
    # A thumbnail outside is enough to leave the whole job alone.
    half = await make_job(
        store, video_dir, "delivered", OLD, video=video_dir / "job-x.mp4", thumb=elsewhere / "c.jpg"
    )
    # A symlink inside VIDEO_DIR that leads out of it, named like a video: a row pointing to it
    # and the orphan rule must both leave the link and its target alone.
    target = write(elsewhere / "secret.mp4", 100, OLD)
    link = video_dir / "job-700.mp4"
    link.symlink_to(target)
    os.utime(link, (OLD, OLD), follow_symlinks=False)
    linked = await make_job(store, video_dir, "delivered", OLD, video=link, thumb=link)
    orphan_link = video_dir / "job-701.mp4"
    orphan_link.symlink_to(target)
    before = {job.id: job for job in (outside, traversal, half, linked)}

    sweeper = janitor(store, video_dir)
    with caplog.at_level(logging.WARNING, logger="bot.storage.janitor"):
        report = await sweeper.run_once()
        await sweeper.run_once()

    assert report is not None and report.files == 0 and report.jobs == []
    assert sorted(report.outside) == sorted(before)
    for job_id, job in before.items():
        assert await store.get(job_id) == job  # rows untouched, too
    assert sorted(p.name for p in elsewhere.iterdir()) == [
        "a.jpg", "a.mp4", "b.jpg", "b.mp4", "c.jpg", "secret.mp4",
    ]  # fmt: skip
    assert (video_dir / "job-x.mp4").exists()
    assert link.is_symlink() and orphan_link.is_symlink() and target.exists()
    warnings = [r.getMessage() for r in caplog.records if "outside" in r.getMessage()]
    assert len(warnings) == 1  # once per job, not every hour


async def test_missing_files_are_recorded_without_counting(
    store: JobStore, video_dir: Path
) -> None:
    job = await make_job(store, video_dir, "delivered", OLD)
    for path in files_of(video_dir, job.id):
        path.unlink()
    report = await janitor(store, video_dir).run_once()
    assert report is not None and report.jobs == [job.id] and report.files == 0
    now = await store.get(job.id)
    assert now is not None and now.video_path is None and now.file_id == "FILE_ID"


def test_a_missing_video_dir_deletes_and_records_nothing(tmp_path: Path) -> None:
    report = sweep(tmp_path / "nope", [(1, [str(tmp_path / "nope" / "job-1.mp4")])], [], set(), NOW)
    assert report.jobs == [] and report.files == 0


async def test_mark_files_deleted_only_touches_final_jobs(store: JobStore, video_dir: Path) -> None:
    job = await make_job(store, video_dir, "generated", OLD)
    assert not await store.mark_files_deleted(job.id)
    assert await store.get(job.id) == job


def test_disk_usage_counts_the_bots_files(video_dir: Path) -> None:
    write(video_dir / "job-1.mp4", 2_500_000, NOW)
    write(video_dir / "job-1.jpg", 500_000, NOW)
    write(video_dir / "bot.sqlite3", 9_000_000, NOW)
    files, size = disk_usage(video_dir)
    assert (files, size) == (2, 3_000_000)
    assert admin_texts.disk(files, size, 7) == "Видео на диске: 2 файла, 3,0 МБ (хранятся 7 дн.)"
    assert admin_texts.disk(1, 0, 0).endswith("1 файл, 0,0 МБ (хранятся всегда)")
    assert disk_usage(video_dir / "missing") == (0, 0)


# ---------------------------------------------------------------- the real bot


async def _prepare_database(data_dir: Path) -> dict[str, int]:
    """An old delivered job and an old generated (never sent) job, both with files on disk."""
    from pipeline.export import export_mp4
    from tests.fakes.backend import frames_for

    video_dir = data_dir / "videos"
    conn = await db.connect(data_dir / "bot.sqlite3")
    await db.migrate(conn)
    long_ago = time.time() - 10 * DAY  # the real bot runs on the real clock
    store = JobStore(conn, clock=Clock(long_ago))
    try:
        ids = {}
        for name in ("delivered", "generated"):
            job = await store.create(ALICE, ALICE, 1, "кот", options(seed=len(ids)))
            await store.claim_next()
            video = export_mp4(frames_for(job.options), video_dir / f"job-{job.id}.mp4", 8)
            meta = {"path": str(video.path), "thumbnail": str(video.thumbnail), "width": 64,
                    "height": 64, "duration": 1.125, "frames": 9, "fps": 8, "seed": 0}  # fmt: skip
            await store.mark_generated(job.id, str(video.path), meta, 1.0)
            if name == "delivered":
                await store.mark_delivered(job.id, "OLD_FILE_ID", 50)
            for path in (video.path, video.thumbnail):
                os.utime(path, (long_ago, long_ago))
            ids[name] = job.id
        return ids
    finally:
        await conn.close()


@pytest.mark.e2e
async def test_the_bot_sweeps_at_start_and_still_sends_an_old_generated_video(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    from tests.e2e.harness import running_bot

    ids = await _prepare_database(tmp_path)
    videos = tmp_path / "videos"
    async with running_bot(tg, tmp_path, FakeBackend(), admin_ids=[ALICE]) as app:
        assert app.janitor is not None and app.janitor.retention_days == 7
        # The sweep at start removes the delivered job's files …
        await tg.wait_for(lambda: not (videos / f"job-{ids['delivered']}.mp4").exists())
        # … while recovery sends the generated one from its (old) file.
        await tg.wait_for(lambda: tg.videos(ALICE))
        await wait_status(app.jobs, ids["generated"], "delivered")
        old = await app.jobs.get(ids["delivered"])
        assert old is not None and old.video_path is None and old.file_id == "OLD_FILE_ID"
        assert old.video_meta is not None and old.video_meta["files_deleted_at"] > 0
        # «🔁» on the old job still works: it renders anew.
        tg.push_callback(RepeatCb(job_id=ids["delivered"]).pack(), user_id=ALICE, message_id=50)
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 2)
        tg.push_message("/stats", user_id=ALICE)
        stats = await tg.wait_for(
            lambda: next((x for x in tg.texts_to(ALICE) if "Видео на диске" in x), None)
        )
    # The recovered video and the new one are on disk; the old delivered job's are not.
    assert "Видео на диске: 4 файла" in stats and "(хранятся 7 дн.)" in stats


async def wait_status(store: JobStore, job_id: int, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (job := await store.get(job_id)) is None or job.status != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} not {status} within {timeout} s")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- VIDEO_DIR_MAX_GB, DATA_RETENTION_DAYS


async def test_the_cap_deletes_the_oldest_finished_videos_first(
    store: JobStore, video_dir: Path
) -> None:
    oldest = await make_job(store, video_dir, "delivered", OLD)
    middle = await make_job(store, video_dir, "failed", RECENT)
    newest = await make_job(store, video_dir, "delivered", NOW - 10)
    generated = await make_job(store, video_dir, "generated", OLD - DAY)  # still to be sent
    per_job = VIDEO_BYTES + THUMB_BYTES
    # Room for three jobs' files, four are there: only the oldest finished one goes.
    keeper = Janitor(store, video_dir, 0, cap_bytes=3 * per_job + 1, clock=lambda: NOW)
    assert await keeper.make_room()
    assert not any(p.exists() for p in files_of(video_dir, oldest.id))
    for job in (middle, newest, generated):
        assert all(p.exists() for p in files_of(video_dir, job.id))
    assert (await store.get(oldest.id)).video_path is None  # type: ignore[union-attr]


async def test_a_store_full_of_unfinished_work_refuses_new_jobs(
    store: JobStore, video_dir: Path
) -> None:
    generated = await make_job(store, video_dir, "generated", OLD)
    keeper = Janitor(store, video_dir, 0, cap_bytes=100, clock=lambda: NOW)
    assert not await keeper.make_room()  # nothing finished to delete: still full
    assert all(p.exists() for p in files_of(video_dir, generated.id))


async def test_data_retention_forgets_prompts_and_names_but_keeps_counts(
    store: JobStore, video_dir: Path
) -> None:
    from bot.storage.users import UserStore

    users = UserStore(store.conn, clock=lambda: OLD)
    await users.touch(ALICE, "alice", "Алиса")
    old = await make_job(store, video_dir, "delivered", OLD)
    recent = await make_job(store, video_dir, "delivered", NOW - 10)
    queued = await make_job(store, video_dir, "queued", OLD)
    stats_before = await store.stats(0)
    keeper = Janitor(store, video_dir, 0, users=users, data_retention_days=7, clock=lambda: NOW)
    assert await keeper.forget_old_texts() == (1, 1)
    forgotten = await store.get(old.id)
    assert forgotten is not None and forgotten.prompt == "" and forgotten.options.prompt == ""
    assert forgotten.status == "delivered" and forgotten.options.seed == old.options.seed
    assert (await store.get(recent.id)).prompt == "кот"  # type: ignore[union-attr]
    assert (await store.get(queued.id)).prompt == "кот"  # type: ignore[union-attr]  # not finished
    user = await users.get(ALICE)
    assert user is not None and user.username is None and user.first_name is None
    assert await store.stats(0) == stats_before  # /stats counts what it counted


async def test_requests_do_not_rescan_a_folder_with_room(
    store: JobStore, video_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admission asks for room on every request: a folder with room is scanned once per
    ``USAGE_FRESH`` seconds, not per request; a full one is scanned every time (to free it)."""
    import bot.storage.janitor as janitor_module

    await make_job(store, video_dir, "delivered", OLD)
    scans = []
    real = janitor_module.disk_usage
    monkeypatch.setattr(janitor_module, "disk_usage", lambda d: scans.append(d) or real(d))
    roomy = Janitor(store, video_dir, 0, cap_bytes=10**9, clock=lambda: NOW)
    assert all([await roomy.make_room() for _ in range(50)])
    assert len(scans) == 1
    full = Janitor(store, video_dir, 0, cap_bytes=1, clock=lambda: NOW)
    for _ in range(3):
        await full.make_room()
    assert len(scans) == 1 + 3
