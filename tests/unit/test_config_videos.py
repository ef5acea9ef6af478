"""bot/config.py: ``VIDEO_STORE`` and ``S3_ENDPOINT_URL``, refused with a message that says the rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings
from bot.storage.videos import LocalVideoStore, S3VideoStore
from bot.wiring import video_store

TOKEN = "987654321:AAHsecretSECRETsecret_0123456789abcd"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("BOT_TOKEN", TOKEN)


@pytest.mark.parametrize("value", ["", "  "])
def test_unset_keeps_videos_in_video_dir(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("VIDEO_STORE", value)
    settings = Settings()
    assert settings.video_store is None and settings.s3_endpoint_url is None
    store = video_store(settings)
    assert isinstance(store, LocalVideoStore) and store.root == settings.video_dir


@pytest.mark.parametrize(
    ("value", "expected", "bucket", "prefix"),
    [
        ("s3://my-bucket/t2v", "s3://my-bucket/t2v", "my-bucket", "t2v"),
        (" s3://my-bucket/a/b/ ", "s3://my-bucket/a/b", "my-bucket", "a/b"),
        ("s3://videos.example", "s3://videos.example", "videos.example", ""),
    ],
)
def test_an_s3_uri_selects_the_bucket(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str, bucket: str, prefix: str
) -> None:
    monkeypatch.setenv("VIDEO_STORE", value)
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://minio:9000/")
    settings = Settings()
    assert settings.video_store == expected
    assert settings.s3_endpoint_url == "http://minio:9000"
    store = video_store(settings)
    assert isinstance(store, S3VideoStore)
    assert (store.bucket, store.prefix, store.endpoint_url) == (bucket, prefix, "http://minio:9000")
    assert store.key(12, 2, "video.mp4") == "/".join(filter(None, [prefix, "job-12/a2/video.mp4"]))
    assert store.owns(str(settings.video_dir / "job-1.mp4"))  # rows from before still readable


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("s3:/bucket/x", "must be s3://bucket/prefix"),
        ("gs://bucket/x", "must be s3://bucket/prefix"),
        ("/mnt/videos", "must be s3://bucket/prefix"),
        ("s3://My_Bucket/x", "not an S3 bucket name"),
        ("s3://ab", "not an S3 bucket name"),
        ("s3:///prefix", "not an S3 bucket name"),
    ],
)
def test_a_bad_uri_is_refused_saying_the_rule(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("VIDEO_STORE", value)
    with pytest.raises(ValidationError) as info:
        Settings()
    message = str(info.value)
    assert "video_store" in message.lower() and says in message
    assert "S3_ENDPOINT_URL" not in message


@pytest.mark.parametrize(
    ("store", "endpoint", "says"),
    [
        ("s3://bucket/x", "minio:9000", "S3_ENDPOINT_URL must be a URL"),
        ("s3://bucket/x", "ftp://minio", "S3_ENDPOINT_URL must be a URL"),
        ("", "http://minio:9000", "VIDEO_STORE is not s3://bucket/prefix"),
    ],
)
def test_a_bad_endpoint_is_refused(
    monkeypatch: pytest.MonkeyPatch, store: str, endpoint: str, says: str
) -> None:
    monkeypatch.setenv("VIDEO_STORE", store)
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "s3_endpoint_url" in str(info.value).lower() and says in str(info.value)
