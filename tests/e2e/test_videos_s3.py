"""VIDEO_STORE=s3://…: the janitor deletes expired objects, and the real bot delivers from the
bucket (moto's S3 server on 127.0.0.1, tests/fakes/s3.py; the fake Bot API)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import db
from bot.storage.janitor import DAY, Janitor
from bot.storage.jobs import Job, JobStore
from bot.storage.videos import LocalVideoStore, S3VideoStore
from pipeline.options import GenerationOptions
from tests.fakes.backend import FakeBackend
from tests.fakes.s3 import S3Server, s3, s3_server  # noqa: F401  (fixtures)
from tests.fakes.telegram import FakeTelegram

ALICE = 1001
NOW = time.time() + 10 * DAY
"""The janitor's clock: ten days from now, so objects written now are old enough to expire."""


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def options() -> GenerationOptions:
    return GenerationOptions(
        prompt="кот", negative_prompt="", steps=4, seed=42, frames=9, fps=8, width=64,
        height=64, guidance=5.0,
    )  # fmt: skip


@pytest.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[JobStore]:
    conn = await db.connect(tmp_path / "bot.sqlite3")
    await db.migrate(conn)
    yield JobStore(conn, clock=Clock())
    await conn.close()


def rendered(folder: Path, name: str, payload: bytes) -> Path:
    """What the encoder leaves in a worker's VIDEO_DIR: the MP4 and its thumbnail."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / name
    video.write_bytes(payload)
    video.with_suffix(".jpg").write_bytes(b"\xff\xd8")
    return video


async def finished_job(
    jobs: JobStore, videos: S3VideoStore, folder: Path, status: str, at: float
) -> Job:
    """A job rendered (attempt 1) and stored in the bucket, which reached ``status`` at ``at``."""
    jobs.clock.now = at  # type: ignore[attr-defined]
    job = await jobs.create(ALICE, ALICE, 1, "кот", options())
    claimed = await jobs.claim_next()
    assert claimed is not None and claimed.id == job.id
    video = rendered(folder, f"job-{job.id}.mp4", os.urandom(2000))
    stored = await videos.put(job.id, claimed.attempts, video, video.with_suffix(".jpg"))
    meta = {"path": stored.video, "thumbnail": stored.thumbnail}
    assert await jobs.mark_generated(job.id, stored.video, meta, 1.0)
    if status == "delivered":
        assert await jobs.mark_delivered(job.id, "FILE_ID", 77)
    jobs.clock.now = NOW  # type: ignore[attr-defined]
    found = await jobs.get(job.id)
    assert found is not None and found.status == status
    return found


def objects_of(s3: S3Server, bucket: str, job_id: int) -> list[str]:  # noqa: F811
    return [key for key in s3.keys(bucket) if f"/job-{job_id}/" in key]


async def test_the_janitor_deletes_expired_objects_and_keeps_the_rest(
    s3: S3Server,  # noqa: F811
    jobs: JobStore,
    tmp_path: Path,
) -> None:
    bucket = s3.new_bucket()
    videos = S3VideoStore(
        f"s3://{bucket}/clips", endpoint_url=s3.endpoint_url, local=LocalVideoStore(tmp_path)
    )
    scratch = tmp_path / "videos"
    old = await finished_job(jobs, videos, scratch, "delivered", NOW - 10 * DAY)
    fresh = await finished_job(jobs, videos, scratch, "delivered", NOW - 2 * DAY)
    waiting = await finished_job(jobs, videos, scratch, "generated", NOW - 30 * DAY)
    # A stale worker's late uploads of attempt 9: junk once old, unless its job is still active.
    for job in (old, waiting):
        await videos.put(job.id, 9, rendered(scratch, f"late-{job.id}.mp4", b"late"))
    s3.client.put_object(Bucket=bucket, Key="clips/README.txt", Body=b"the operator's own")
    assert len(objects_of(s3, bucket, old.id)) == 3

    report = await Janitor(jobs, scratch, 7, videos=videos, clock=lambda: NOW).run_once()

    assert report is not None and report.jobs == [old.id] and report.errors == 0
    assert (report.files, report.orphans) == (3, 1)
    assert objects_of(s3, bucket, old.id) == []
    gone = await jobs.get(old.id)
    assert gone is not None and gone.video_path is None and gone.file_id == "FILE_ID"
    assert objects_of(s3, bucket, fresh.id) == [
        f"clips/job-{fresh.id}/a1/thumb.jpg",
        f"clips/job-{fresh.id}/a1/video.mp4",
    ]
    kept = await jobs.get(fresh.id)
    assert (
        kept is not None and kept.video_path == f"s3://{bucket}/clips/job-{fresh.id}/a1/video.mp4"
    )
    # Still to be sent: its objects and even its stale attempt's stay, however old.
    assert len(objects_of(s3, bucket, waiting.id)) == 3
    assert "clips/README.txt" in s3.keys(bucket)

    # Without VIDEO_STORE the bucket's rows are left alone (row and objects).
    later = Janitor(jobs, scratch, 1, clock=lambda: NOW + 10 * DAY)
    report = await later.run_once()
    assert report is not None and fresh.id in report.outside
    assert len(objects_of(s3, bucket, fresh.id)) == 2


@pytest.mark.e2e
async def test_the_bot_delivers_one_video_from_the_bucket(
    s3: S3Server,  # noqa: F811
    tg: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.e2e.harness import running_bot

    bucket = s3.new_bucket()
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where deliveries download
    store = {"video_store": f"s3://{bucket}/prod/", "s3_endpoint_url": s3.endpoint_url}
    async with running_bot(tg, tmp_path, FakeBackend(), **store) as app:
        assert isinstance(app.janitor.videos, S3VideoStore)
        request = tg.push_message("кот играет на пианино", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE))
        deadline = time.monotonic() + 10
        while (job := await app.jobs.get(1)) is None or job.status != "delivered":
            assert time.monotonic() < deadline, "not delivered"
            await asyncio.sleep(0.02)

    sent = tg.videos(ALICE)
    assert len(sent) == 1
    assert sent[0].params["reply_parameters"]["message_id"] == request["message_id"]
    assert job.video_path == f"s3://{bucket}/prod/job-1/a1/video.mp4"
    upload = sent[0].file("video")
    assert upload is not None and upload.data == s3.read(job.video_path)
    assert upload.filename == "video-1.mp4"
    thumb = sent[0].file("thumbnail")
    assert job.video_meta is not None and job.video_meta["thumbnail"] is not None
    assert thumb is not None and thumb.data == s3.read(job.video_meta["thumbnail"])
    # Nothing left behind on this machine: no download, no rendered copy.
    assert os.listdir(temp) == []
    assert [p.name for p in (tmp_path / "videos").iterdir()] == []


@pytest.mark.e2e
@pytest.mark.parametrize("bucket_exists", [True, False])
async def test_check_says_whether_the_bucket_answers(
    s3: S3Server,  # noqa: F811
    tg: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bucket_exists: bool,
) -> None:
    import json
    import logging

    from bot.__main__ import main

    for name in list(os.environ):
        if name.startswith(("BOT_", "T2V_", "METRICS_", "WEBHOOK_", "DATABASE_", "VIDEO_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    bucket = s3.new_bucket() if bucket_exists else "no-such-bucket"
    monkeypatch.setenv("BOT_TOKEN", tg.token)
    monkeypatch.setenv("TELEGRAM_API_URL", tg.base_url)
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "data" / "bot.sqlite3"))
    monkeypatch.setenv("VIDEO_DIR", str(tmp_path / "data" / "videos"))
    monkeypatch.setenv("T2V_MODEL", str(model))
    monkeypatch.setenv("TRANSLATOR_MODEL", "none")
    monkeypatch.setenv("VIDEO_STORE", f"s3://{bucket}/clips")
    monkeypatch.setenv("S3_ENDPOINT_URL", s3.endpoint_url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        code = await asyncio.to_thread(main, ["--check"])
    finally:
        root.handlers[:], root.level = handlers, level
    lines = [text for text in capsys.readouterr().out.splitlines() if text.strip()]
    (found,) = [text for text in lines if text.startswith("video store: ")]
    if bucket_exists:
        assert code == 0, lines
        assert (
            found == f"video store: ok, bucket s3://{bucket}/clips at {s3.endpoint_url} is"
            " reachable (empty so far)"
        )
        assert s3.keys(bucket) == []  # --check writes nothing
    else:
        assert code == 1, lines
        assert found.startswith("video store: FAIL, ") and "no-such-bucket" in found
        assert [text for text in lines if ": FAIL, " in text] == [found]
    assert "testing-secret" not in "\n".join(lines)


@pytest.mark.e2e
async def test_after_a_restart_the_bucket_is_sent_from_and_a_lost_object_is_said(
    s3: S3Server,  # noqa: F811
    tg: FakeTelegram,
    tmp_path: Path,
) -> None:
    """Jobs left ``generated`` (the front end restarted before sending): one is sent from the
    bucket without rendering again; one whose object is gone fails with the message saying so."""
    from bot.i18n import use_locale
    from bot.storage.jobs import FailReason
    from bot.texts import status as status_texts
    from tests.e2e.harness import running_bot

    bucket = s3.new_bucket()
    videos = S3VideoStore(f"s3://{bucket}/v", endpoint_url=s3.endpoint_url)
    conn = await db.connect(tmp_path / "bot.sqlite3")
    await db.migrate(conn)
    jobs = JobStore(conn)
    ids = {}
    for name in ("kept", "lost"):
        job = await jobs.create(ALICE, ALICE, 10 + len(ids), "кот", options())
        assert (await jobs.claim_next()) is not None
        stored = await videos.put(
            job.id, 1, rendered(tmp_path / "worker", f"job-{job.id}.mp4", os.urandom(5000))
        )
        meta = {"path": stored.video, "thumbnail": None, "width": 64, "height": 64}
        assert await jobs.mark_generated(job.id, stored.video, meta, 1.0)
        ids[name] = (job.id, stored.video)
    await conn.close()
    expected = s3.read(ids["kept"][1])
    await videos.delete(ids["lost"][1])

    backend = FakeBackend()
    store = {"video_store": f"s3://{bucket}/v", "s3_endpoint_url": s3.endpoint_url}
    async with running_bot(tg, tmp_path, backend, **store) as app:
        await tg.wait_for(lambda: tg.videos(ALICE))
        for name, status in (("kept", "delivered"), ("lost", "failed")):
            deadline = time.monotonic() + 10
            while (job := await app.jobs.get(ids[name][0])) is None or job.status != status:
                assert time.monotonic() < deadline, f"{name} not {status}"
                await asyncio.sleep(0.02)
        lost = await app.jobs.get(ids["lost"][0])
        assert lost is not None and lost.error == FailReason.VIDEO_MISSING
        with use_locale("ru"):
            said = status_texts.failure(FailReason.VIDEO_MISSING)
        await tg.wait_for(lambda: any(said in text for text in tg.texts_to(ALICE)))

    sent = tg.videos(ALICE)
    assert len(sent) == 1 and backend.runs == []  # sent from the bucket, nothing rendered
    upload = sent[0].file("video")
    assert upload is not None and upload.data == expected
    assert sent[0].params["reply_parameters"]["message_id"] == 10


@pytest.mark.e2e
async def test_an_upload_the_store_refuses_fails_only_that_job(
    s3: S3Server,  # noqa: F811
    tg: FakeTelegram,
    tmp_path: Path,
) -> None:
    """A bucket that is gone (or a store that refuses): the job fails with a message, nothing is
    sent, and the loop goes on with the next job."""
    from bot.i18n import use_locale
    from bot.storage.jobs import FailReason
    from bot.texts import status as status_texts
    from tests.e2e.harness import running_bot

    store = {"video_store": "s3://no-such-bucket/v", "s3_endpoint_url": s3.endpoint_url}
    async with running_bot(tg, tmp_path, FakeBackend(), **store) as app:
        tg.push_message("кот", user_id=ALICE)
        with use_locale("ru"):
            said = status_texts.failure(FailReason.GENERATION)
        await tg.wait_for(lambda: any(said in text for text in tg.texts_to(ALICE)))
        job = await app.jobs.get(1)
        assert job is not None and job.status == "failed" and job.video_path is None
        assert app.worker.running  # the loop lives on
    assert tg.videos(ALICE) == []
