"""Where finished videos live between the render and the upload to Telegram: a ``VideoStore``.

Two implementations, one :class:`VideoStore` Protocol:

* :class:`LocalVideoStore` (the default): ``VIDEO_DIR`` on this machine, or a directory several
  machines mount. The encoder already wrote the MP4 and its thumbnail there, so :meth:`put` keeps
  them where they are (``job-<id>.mp4``, as before), and delivery uploads the file in place.
* :class:`S3VideoStore` (``VIDEO_STORE=s3://bucket/prefix``, ``S3_ENDPOINT_URL`` for MinIO, Ceph,
  R2 …; credentials from the standard AWS variables or files, read by boto3): a GPU worker on any
  machine renders into its own ``VIDEO_DIR`` (scratch), :meth:`put` uploads the MP4 and thumbnail
  (multipart above ``multipart_threshold``, boto3's transfer manager) and deletes the local copies;
  the front end downloads into a temporary folder for the Telegram upload and removes it after
  (:meth:`open`). Workers never hold the bot token.

Why the object key holds the attempt (``prefix/job-12/a2/video.mp4``): a worker that lost its
lease may still finish and upload after the job was claimed again. Its late upload lands under
its own attempt's key and can never replace the object the live attempt's row points to; the row
is written only through the (job, attempt) fence, and the janitor deletes such unreferenced
objects after ``VIDEO_RETENTION_DAYS`` (:meth:`S3VideoStore.orphans`).

A job's location is stored as before in ``jobs.video_path`` and ``video_meta["thumbnail"]``: a
path for the local store, an ``s3://bucket/key`` URI for S3. Rows written before
``VIDEO_STORE`` was set keep their paths and are still delivered from disk.

boto3 is blocking: every call runs in a thread (``asyncio.to_thread``), never on the event loop,
and boto3 is imported only when an S3 store is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_KEY_RE = re.compile(r"(?:^|/)job-(\d+)/a\d+/(?:video\.mp4|thumb\.jpg)$")
"""Keys :meth:`S3VideoStore.put` writes (the janitor's orphan sweep touches no other object)."""

MB = 1024 * 1024
MULTIPART_THRESHOLD = 16 * MB
"""Files larger than this go up (and down) in parts, several at once."""
MULTIPART_CHUNKSIZE = 8 * MB
"""Size of one part (S3 wants at least 5 MiB but for the last)."""
T = TypeVar("T")


class VideoStoreError(Exception):
    """The store could not do what was asked (network, permissions, disk); the message says what
    and where, never a credential."""


class VideoMissing(VideoStoreError):
    """The video is not (or no longer) in the store."""


@dataclass(frozen=True)
class StoredVideo:
    """Where :meth:`VideoStore.put` put a job attempt's files: what the job row stores."""

    video: str
    """``jobs.video_path``: a path, or an ``s3://bucket/key`` URI."""
    thumbnail: str | None
    """``video_meta["thumbnail"]``."""


@dataclass(frozen=True)
class LocalVideo:
    """Local files to upload to Telegram, valid inside :meth:`VideoStore.open`'s block."""

    video: Path
    thumbnail: Path | None


class VideoStore(Protocol):
    """Holds finished videos until the janitor deletes them (see the module's docstring)."""

    @property
    def description(self) -> str:
        """Where the videos go, for logs and ``--check`` (no credentials)."""
        ...

    def owns(self, location: str) -> bool:
        """Whether ``location`` (a stored path or URI) is one this store reads and deletes."""
        ...

    async def put(
        self, job_id: int, attempt: int, video: Path, thumbnail: Path | None = None
    ) -> StoredVideo:
        """Store the rendered files of attempt ``attempt`` of job ``job_id``; the store owns them
        afterwards (a remote store deletes the local copies). Raises :class:`VideoStoreError`."""
        ...

    def open(
        self, video: str, thumbnail: str | None = None
    ) -> AbstractAsyncContextManager[LocalVideo]:
        """Local files of stored locations for the block's duration (a download is removed
        after it). Raises :class:`VideoMissing` when the video is gone, another
        :class:`VideoStoreError` when the store cannot be read now; a missing thumbnail is
        ``None``."""
        ...

    async def size(self, location: str) -> int | None:
        """Bytes of a stored file; None when it does not exist. Raises :class:`VideoStoreError`
        when the store cannot be asked now."""
        ...

    async def exists(self, location: str) -> bool:
        """Whether a stored file exists (:meth:`size` is not None)."""
        ...

    async def delete(self, location: str) -> bool:
        """Delete a stored file; True if something was deleted (or may have been: S3 does not
        say), False when it was already gone. Raises :class:`VideoStoreError`."""
        ...

    async def orphans(self, before: float) -> list[tuple[int, str]]:
        """(job id, location) of every file this store holds that was last written before the
        Unix time ``before``: the janitor deletes those no job points to. The local store lists
        none (the janitor's own folder sweep covers ``VIDEO_DIR``)."""
        ...

    async def check(self) -> str:
        """``--check``: a line saying the store is usable; raises :class:`VideoStoreError`."""
        ...


def is_s3_uri(location: str | None) -> bool:
    return bool(location) and str(location).startswith(S3_SCHEME)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``; ValueError naming the rule."""
    text = uri.strip()
    if not text.startswith(S3_SCHEME):
        raise ValueError(f"{uri!r} is not an s3://bucket/prefix URI")
    bucket, _, key = text[len(S3_SCHEME) :].partition("/")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise ValueError(
            f"{bucket!r} is not an S3 bucket name (3-63 lowercase letters, digits, dots and"
            " hyphens, starting and ending with a letter or digit)"
        )
    return bucket, key.strip("/")


# ------------------------------------------------------------------------------ local


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class LocalVideoStore:
    """Videos stay in ``root`` (``VIDEO_DIR``) where the encoder wrote them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def description(self) -> str:
        return str(self.root)

    def owns(self, location: str) -> bool:
        return bool(location) and not is_s3_uri(location)

    async def put(
        self, job_id: int, attempt: int, video: Path, thumbnail: Path | None = None
    ) -> StoredVideo:
        """The files already lie in ``VIDEO_DIR``: nothing moves (names as before)."""
        return StoredVideo(str(video), str(thumbnail) if thumbnail else None)

    @contextlib.asynccontextmanager
    async def open(self, video: str, thumbnail: str | None = None) -> AsyncIterator[LocalVideo]:
        if is_s3_uri(video):
            raise VideoMissing(f"{video} is in an object store, but VIDEO_STORE is not set")
        path = Path(video)
        if await asyncio.to_thread(_file_size, path) is None:
            raise VideoMissing(f"{path} does not exist")
        thumb = Path(thumbnail) if thumbnail and not is_s3_uri(thumbnail) else None
        if thumb is not None and await asyncio.to_thread(_file_size, thumb) is None:
            thumb = None
        yield LocalVideo(path, thumb)

    async def size(self, location: str) -> int | None:
        if not self.owns(location):
            return None
        return await asyncio.to_thread(_file_size, Path(location))

    async def exists(self, location: str) -> bool:
        return await self.size(location) is not None

    async def delete(self, location: str) -> bool:
        """Only a regular file inside ``root`` is ever deleted (as the janitor's own rule)."""
        if not self.owns(location):
            raise VideoStoreError(f"{location} is not a local file")
        try:
            return await asyncio.to_thread(self._delete_inside, Path(location))
        except OSError as error:
            raise VideoStoreError(f"cannot delete {location}: {error}") from error

    def _delete_inside(self, path: Path) -> bool:
        inside = path.resolve().is_relative_to(self.root.resolve())
        if not inside or path.is_symlink() or (path.exists() and not path.is_file()):
            raise VideoStoreError(f"{path}: not a file inside {self.root}; left alone")
        return _unlink(path)

    async def orphans(self, before: float) -> list[tuple[int, str]]:
        return []

    async def check(self) -> str:
        root = self.root
        if root.is_dir():
            if os.access(root, os.W_OK | os.X_OK):
                return f"{root} is writable"
            raise VideoStoreError(f"{root} is not writable")
        raise VideoStoreError(f"{root} is not a directory")


# ------------------------------------------------------------------------------ S3


def _not_found(error: BaseException) -> bool:
    """S3's "no such object" (HEAD says 404, GET says NoSuchKey)."""
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    return str(error.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound")


class S3VideoStore:
    """Videos in an S3-compatible bucket under ``prefix``; paths of older rows still work."""

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        local: LocalVideoStore | None = None,
        scratch_dir: Path | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        multipart_chunksize: int = MULTIPART_CHUNKSIZE,
    ) -> None:
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.endpoint_url = endpoint_url
        self.local = local
        """Reads the local paths of rows written before ``VIDEO_STORE`` was set."""
        self.scratch_dir = scratch_dir
        """Where deliveries download (None: the system's temporary folder)."""
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self._client: Any = None
        self._transfer: Any = None
        self._lock = threading.Lock()

    @property
    def description(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        prefix = f"/{self.prefix}" if self.prefix else ""
        return f"{S3_SCHEME}{self.bucket}{prefix}{where}"

    def owns(self, location: str) -> bool:
        if is_s3_uri(location):
            return True
        return self.local is not None and self.local.owns(location)

    def key(self, job_id: int, attempt: int, name: str) -> str:
        """``prefix/job-<id>/a<attempt>/<name>``: one folder per attempt (module docstring)."""
        relative = f"job-{int(job_id)}/a{int(attempt)}/{name}"
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def uri(self, key: str) -> str:
        return f"{S3_SCHEME}{self.bucket}/{key}"

    # -------------------------------------------------------- boto3, in threads

    def _s3(self) -> Any:
        """The client, built once (boto3 clients are thread-safe, their creation is not)."""
        with self._lock:
            if self._client is None:
                import boto3
                from boto3.s3.transfer import TransferConfig
                from botocore.config import Config

                session = boto3.session.Session()
                self._client = session.client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 5},
                        connect_timeout=10,
                        read_timeout=60,
                    ),
                )
                self._transfer = TransferConfig(
                    multipart_threshold=self.multipart_threshold,
                    multipart_chunksize=self.multipart_chunksize,
                    max_concurrency=4,
                )
            return self._client

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a thread; its failure as :class:`VideoStoreError` naming ``what``."""

        def run() -> T:
            self._s3()
            return fn(*args)

        try:
            return await asyncio.to_thread(run)
        except VideoStoreError:
            raise
        except Exception as error:
            if _not_found(error):
                raise VideoMissing(f"{what}: not found") from error
            raise VideoStoreError(f"{what}: {type(error).__name__}: {error}") from error

    def _split(self, uri: str) -> tuple[str, str]:
        bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
        return bucket, key

    def _upload(self, path: Path, key: str, content_type: str) -> None:
        self._client.upload_file(
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type},
            Config=self._transfer,
        )

    def _download(self, uri: str, path: Path) -> None:
        bucket, key = self._split(uri)
        self._client.download_file(bucket, key, str(path), Config=self._transfer)

    def _head(self, uri: str) -> int | None:
        bucket, key = self._split(uri)
        try:
            return int(self._client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except Exception as error:
            if _not_found(error):
                return None
            raise

    def _delete(self, uri: str) -> None:
        bucket, key = self._split(uri)
        self._client.delete_object(Bucket=bucket, Key=key)

    def _list_before(self, before: float) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        paginator = self._client.get_paginator("list_objects_v2")
        prefix = f"{self.prefix}/" if self.prefix else ""
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                match = _KEY_RE.search(item["Key"])
                modified: datetime = item["LastModified"]
                if match and modified.timestamp() < before:
                    found.append((int(match.group(1)), self.uri(item["Key"])))
        return found

    def _probe(self) -> str:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as error:
            if _not_found(error):
                raise VideoStoreError(f"{self.description}: no such bucket") from error
            raise
        prefix = f"{self.prefix}/" if self.prefix else ""
        listed = self._client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        some = "holds videos" if listed.get("KeyCount") else "empty so far"
        return f"bucket {self.description} is reachable ({some})"

    # -------------------------------------------------------- the Protocol

    async def put(
        self, job_id: int, attempt: int, video: Path, thumbnail: Path | None = None
    ) -> StoredVideo:
        key = self.key(job_id, attempt, "video.mp4")
        await self._call(f"upload {self.uri(key)}", self._upload, video, key, "video/mp4")
        thumb_uri = None
        if thumbnail is not None and await asyncio.to_thread(_file_size, thumbnail) is not None:
            thumb_key = self.key(job_id, attempt, "thumb.jpg")
            await self._call(
                f"upload {self.uri(thumb_key)}", self._upload, thumbnail, thumb_key, "image/jpeg"
            )
            thumb_uri = self.uri(thumb_key)
        for path in (video, thumbnail):  # the bucket holds them now: free the worker's disk
            if path is not None:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(_unlink, Path(path))
        return StoredVideo(self.uri(key), thumb_uri)

    @contextlib.asynccontextmanager
    async def open(self, video: str, thumbnail: str | None = None) -> AsyncIterator[LocalVideo]:
        if not is_s3_uri(video):
            if self.local is None:
                raise VideoMissing(f"{video} is not in the object store")
            async with self.local.open(video, thumbnail) as files:
                yield files
            return
        folder = Path(await asyncio.to_thread(tempfile.mkdtemp, "", "t2v-video-", self.scratch_dir))
        try:
            video_path = folder / "video.mp4"
            await self._call(f"download {video}", self._download, video, video_path)
            thumb_path: Path | None = None
            if thumbnail:
                thumb_path = await self._thumbnail(thumbnail, folder / "thumb.jpg")
            yield LocalVideo(video_path, thumb_path)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def _thumbnail(self, location: str, path: Path) -> Path | None:
        """The thumbnail is a nicety: any failure to fetch it sends the video without one."""
        if not is_s3_uri(location):
            local = Path(location)
            return local if await asyncio.to_thread(_file_size, local) is not None else None
        try:
            await self._call(f"download {location}", self._download, location, path)
        except VideoStoreError as error:
            log.warning("thumbnail not fetched: %s", error)
            return None
        return path

    async def size(self, location: str) -> int | None:
        if not is_s3_uri(location):
            return await self.local.size(location) if self.local is not None else None
        return await self._call(f"head {location}", self._head, location)

    async def exists(self, location: str) -> bool:
        return await self.size(location) is not None

    async def delete(self, location: str) -> bool:
        if not is_s3_uri(location):
            if self.local is None:
                raise VideoStoreError(f"{location} is not in the object store")
            return await self.local.delete(location)
        await self._call(f"delete {location}", self._delete, location)
        return True

    async def orphans(self, before: float) -> list[tuple[int, str]]:
        return await self._call(f"list {self.description}", self._list_before, before)

    async def check(self) -> str:
        return await self._call(self.description, self._probe)
