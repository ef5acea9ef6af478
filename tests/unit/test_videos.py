"""bot/storage/videos.py: the VideoStore, against a real S3-speaking server on 127.0.0.1 (moto's
server mode, tests/fakes/s3.py) and against a local folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.storage.videos import (
    LocalVideoStore,
    S3VideoStore,
    StoredVideo,
    VideoMissing,
    VideoStoreError,
)
from tests.fakes.s3 import S3Server, s3, s3_server  # noqa: F401  (fixtures)

MB = 1024 * 1024


def rendered(folder: Path, job_id: int, payload: bytes, thumb: bytes = b"\xff\xd8jpeg") -> Path:
    """What the encoder leaves in VIDEO_DIR: job-<id>.mp4 and its .jpg thumbnail."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"job-{job_id}.mp4"
    video.write_bytes(payload)
    video.with_suffix(".jpg").write_bytes(thumb)
    return video


def downloads(scratch: Path) -> list[str]:
    return sorted(os.listdir(scratch))


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def store_for(s3: S3Server, scratch: Path, **kwargs: object) -> S3VideoStore:  # noqa: F811
    bucket = s3.new_bucket()
    return S3VideoStore(
        f"s3://{bucket}/bot/videos",
        endpoint_url=s3.endpoint_url,
        scratch_dir=scratch,
        local=LocalVideoStore(scratch.parent / "videos"),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_put_open_delete_round_trip_keeps_the_bytes(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
    scratch: Path,
) -> None:
    store = store_for(s3, scratch)
    payload = os.urandom(300_000)
    video = rendered(tmp_path / "videos", 12, payload, b"\xff\xd8thumb")

    stored = await store.put(12, 2, video, video.with_suffix(".jpg"))

    assert stored == StoredVideo(
        f"s3://{store.bucket}/bot/videos/job-12/a2/video.mp4",
        f"s3://{store.bucket}/bot/videos/job-12/a2/thumb.jpg",
    )
    assert s3.read(stored.video) == payload
    # The bucket holds them now: the worker's disk is freed.
    assert not video.exists() and not video.with_suffix(".jpg").exists()
    assert await store.size(stored.video) == len(payload) and await store.exists(stored.video)

    async with store.open(stored.video, stored.thumbnail) as files:
        assert files.video.read_bytes() == payload
        assert files.thumbnail is not None and files.thumbnail.read_bytes() == b"\xff\xd8thumb"
        assert files.video.is_relative_to(scratch)
    assert downloads(scratch) == []  # the download is gone after the block

    assert await store.delete(stored.video) and await store.delete(stored.thumbnail or "")
    assert not await store.exists(stored.video) and await store.size(stored.thumbnail or "") is None
    assert s3.keys(store.bucket) == []
    with pytest.raises(VideoMissing):
        async with store.open(stored.video):
            pass
    assert downloads(scratch) == []


async def test_a_stale_attempts_late_upload_never_replaces_the_live_one(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
    scratch: Path,
) -> None:
    store = store_for(s3, scratch)
    live = await store.put(7, 2, rendered(tmp_path / "live", 7, b"attempt two"))
    # The worker that lost its lease finishes later and uploads attempt 1.
    stale = await store.put(7, 1, rendered(tmp_path / "stale", 7, b"attempt one"))

    assert stale.video != live.video
    async with store.open(live.video) as files:
        assert files.video.read_bytes() == b"attempt two"
    assert s3.read(live.video) == b"attempt two"


async def test_a_big_file_goes_up_in_parts_and_comes_back_whole(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
    scratch: Path,
) -> None:
    store = store_for(s3, scratch, multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    payload = os.urandom(11 * MB)
    stored = await store.put(3, 1, rendered(tmp_path / "videos", 3, payload))

    bucket, _, key = stored.video.removeprefix("s3://").partition("/")
    etag = s3.client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    assert etag.endswith("-3"), f"{etag}: not a 3-part multipart upload"
    async with store.open(stored.video) as files:
        assert files.video.read_bytes() == payload
    assert downloads(scratch) == []


async def test_rows_from_before_the_bucket_are_read_from_disk(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
    scratch: Path,
) -> None:
    store = store_for(s3, scratch)
    old = rendered(tmp_path / "videos", 1, b"written before VIDEO_STORE")
    assert await store.size(str(old)) == len(b"written before VIDEO_STORE")
    async with store.open(str(old), str(old.with_suffix(".jpg"))) as files:
        assert files.video == old and files.thumbnail == old.with_suffix(".jpg")
    assert old.exists()  # a local file is handed over in place, never removed by open
    assert await store.delete(str(old)) and not old.exists()


async def test_the_janitors_listing_names_only_the_bots_objects(
    s3: S3Server,  # noqa: F811
    tmp_path: Path,
    scratch: Path,
) -> None:
    import time

    store = store_for(s3, scratch)
    stored = await store.put(5, 1, rendered(tmp_path / "videos", 5, b"x"), None)
    s3.client.put_object(Bucket=store.bucket, Key="bot/videos/notes.txt", Body=b"operator's")
    s3.client.put_object(Bucket=store.bucket, Key="elsewhere/job-9/a1/video.mp4", Body=b"y")
    assert await store.orphans(time.time() + 60) == [(5, stored.video)]
    assert await store.orphans(time.time() - 3600) == []  # written just now: not old enough


async def test_a_missing_bucket_fails_the_check_with_its_name(
    s3: S3Server,  # noqa: F811
    scratch: Path,
) -> None:
    store = S3VideoStore("s3://no-such-bucket/v", endpoint_url=s3.endpoint_url)
    with pytest.raises(VideoStoreError, match="no-such-bucket"):
        await store.check()
    ok = store_for(s3, scratch)
    assert "reachable" in await ok.check()


async def test_the_local_store_hands_files_over_in_place(tmp_path: Path) -> None:
    store = LocalVideoStore(tmp_path / "videos")
    video = rendered(tmp_path / "videos", 4, b"local")
    stored = await store.put(4, 3, video, video.with_suffix(".jpg"))
    assert stored == StoredVideo(str(video), str(video.with_suffix(".jpg")))  # names as before
    async with store.open(stored.video, stored.thumbnail) as files:
        assert files.video == video and files.video.read_bytes() == b"local"
    assert video.exists()
    assert await store.size(stored.video) == 5
    assert await store.delete(stored.video) and not await store.exists(stored.video)
    assert not await store.delete(stored.video)  # already gone
    elsewhere = rendered(tmp_path / "elsewhere", 5, b"not the bot's")
    with pytest.raises(VideoStoreError, match="left alone"):
        await store.delete(str(tmp_path / "videos" / ".." / "elsewhere" / "job-5.mp4"))
    assert elsewhere.exists()
    with pytest.raises(VideoMissing):
        async with store.open(stored.video):
            pass
    with pytest.raises(VideoMissing, match="VIDEO_STORE"):
        async with store.open("s3://bucket/job-4/a3/video.mp4"):
            pass
    assert "writable" in await store.check()
