"""Video retention: deletes old MP4s and thumbnails so ``VIDEO_DIR`` does not fill the disk.

Every clip stays in ``VIDEO_DIR`` after it is sent (≈ 2–5 MB with its thumbnail). The janitor
runs at start and then hourly (``VIDEO_RETENTION_DAYS``; 0 turns it off) and deletes:

* the video and thumbnail of a job in a final state (delivered, failed, cancelled,
  undeliverable) that ended more than N days ago, then records it on the row
  (:meth:`bot.storage.jobs.JobStore.mark_files_deleted`: ``video_path`` NULL, ``files_deleted_at`` in
  ``video_meta``; the Telegram ``file_id`` stays, and «🔁» regenerates with a new seed anyway);
* orphans: files named like the bot's own (``job-<id>[-a<attempt>].mp4``/``.jpg``, the encoder's leftover
  ``.job-<id>.part.mp4``) that no job points to and last modified more than N days ago (a job
  cancelled after rendering, a crash mid-encode).

It never touches a file of a queued, running or generated job (a generated one is sent from its
file after a restart), whatever its age; never a path that resolves outside ``VIDEO_DIR`` (a row
whose path points elsewhere is left alone, row and file); never a symlink, a folder, or a file
not named like the bot's (the database may share the folder). File work runs in a thread
(``asyncio.to_thread``); database reads and writes stay on the event loop.

With ``VIDEO_STORE=s3://…`` (:mod:`bot.storage.videos`) the same retention applies to the
objects: an expired job whose row points into the bucket has its objects deleted through the
store, then the row is marked as above; objects the store lists under its prefix (written by
``put``: ``job-<id>/a<attempt>/…``) that no job points to, of no active job and older than the
retention — a stale attempt's late upload, a job cancelled after its upload — are deleted as
orphans. ``VIDEO_DIR_MAX_GB`` measures the local disk, so it only ever deletes local files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.storage.images import ImageStore
from bot.storage.videos import VideoStoreError, is_s3_uri

if TYPE_CHECKING:
    from bot.storage.jobs import JobStore
    from bot.storage.users import UserStore
    from bot.storage.videos import VideoStore

log = logging.getLogger(__name__)

DAY = 86400.0
INTERVAL = 3600.0
"""Seconds between two sweeps."""

BOT_FILE_RE = re.compile(r"^\.?job-(\d+)(?:-a\d+)?(?:\.part)?\.(?:mp4|jpg)$")
"""Names the bot writes in ``VIDEO_DIR`` (see ``bot/worker/loop.py`` and ``pipeline/export.py``)."""


@dataclass
class SweepReport:
    """What one sweep did."""

    files: int = 0
    """Files deleted (videos, thumbnails and orphans)."""
    bytes: int = 0
    """Bytes freed."""
    jobs: list[int] = field(default_factory=list)
    """Expired jobs whose files are all gone now (deleted or already missing)."""
    orphans: int = 0
    """Of ``files``, how many no job pointed to."""
    outside: list[int] = field(default_factory=list)
    """Expired jobs left alone: a path resolves outside ``VIDEO_DIR``."""
    errors: int = 0
    """Files that could not be deleted (tried again at the next sweep)."""


def _inside(path: str | os.PathLike[str], root: Path) -> Path | None:
    """The real path of ``path`` if it lies inside the real folder ``root``, else None.

    Symlinks are resolved first, so a link that leads out of ``root`` counts as outside.
    """
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if real == root or not real.is_relative_to(root):
        return None
    return real


def _remove(path: Path) -> tuple[bool, int] | None:
    """Delete a regular file (never a symlink or a folder): ``(deleted, size)``, ``(False, 0)``
    if it was already gone, None if it could not or must not be deleted."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False, 0
    except OSError as error:
        log.warning("janitor: cannot inspect %s: %s", path, error)
        return None
    if not stat.S_ISREG(info.st_mode):
        log.warning("janitor: %s is not a regular file; left alone", path)
        return None
    try:
        path.unlink()
    except FileNotFoundError:
        return False, 0
    except OSError as error:
        log.warning("janitor: cannot delete %s: %s", path, error)
        return None
    return True, info.st_size


def sweep(
    video_dir: Path,
    expired: Iterable[tuple[int, list[str]]],
    references: Iterable[str],
    keep_ids: set[int],
    cutoff: float,
) -> SweepReport:
    """The file side of one run (blocking; call it in a thread).

    ``expired``: (job id, its stored paths) of final jobs past retention; ``references``: every
    path some job points to; ``keep_ids``: jobs whose files must stay (queued, running,
    generated); ``cutoff``: orphans last modified before it are deleted.
    """
    report = SweepReport()
    try:
        root = video_dir.resolve(strict=True)
    except (OSError, RuntimeError):
        return report  # no folder (yet, or an unmounted disk): nothing is deleted or recorded
    if not root.is_dir():
        return report

    for job_id, paths in expired:
        reals = [_inside(path, root) for path in paths]
        if any(real is None for real in reals):
            report.outside.append(job_id)
            continue
        results = [_remove(real) for real in reals if real is not None]
        for result in results:
            if result is not None and result[0]:
                report.files += 1
                report.bytes += result[1]
        if any(result is None for result in results):
            report.errors += 1
            continue
        report.jobs.append(job_id)

    referenced = {real for path in references if (real := _inside(path, root)) is not None}
    try:
        entries = list(os.scandir(root))
    except OSError as error:
        log.warning("janitor: cannot list %s: %s", root, error)
        return report
    for entry in entries:
        match = BOT_FILE_RE.match(entry.name)
        if match is None or int(match.group(1)) in keep_ids:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
        except OSError:
            continue
        path = root / entry.name
        if path in referenced:
            continue  # a finished job's file, deleted with its job once that job is old enough
        result = _remove(path)
        if result is None:
            report.errors += 1
        elif result[0]:
            report.files += 1
            report.orphans += 1
            report.bytes += result[1]
    return report


def disk_usage(video_dir: Path) -> tuple[int, int]:
    """(files, bytes) of the bot's videos and thumbnails in ``video_dir`` (blocking)."""
    files = size = 0
    try:
        entries = list(os.scandir(video_dir))
    except OSError:
        return 0, 0
    for entry in entries:
        if not BOT_FILE_RE.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                files += 1
                size += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
    return files, size


def megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def free_space(
    video_dir: Path, candidates: Iterable[tuple[int, list[str]]], cap_bytes: int
) -> tuple[list[int], int]:
    """Delete the files of ``candidates`` (finished jobs, oldest first) until the bot's files in
    ``video_dir`` take less than ``cap_bytes``; returns the ids whose files went and the bytes
    still used. Only regular files inside ``video_dir`` are ever deleted."""
    root = video_dir.resolve()
    _files, used = disk_usage(video_dir)
    freed: list[int] = []
    for job_id, paths in candidates:
        if used < cap_bytes:
            break
        for path in paths:
            real = _inside(path, root)
            result = _remove(real) if real is not None else None
            if result is not None and result[0]:
                used -= result[1]
        freed.append(job_id)
    return freed, used


class Janitor:
    """Runs :func:`sweep` at start and every ``interval`` seconds while the bot runs; keeps the
    videos under ``cap_bytes`` (``VIDEO_DIR_MAX_GB``) and forgets what users wrote after
    ``data_retention_days`` (``DATA_RETENTION_DAYS``)."""

    def __init__(
        self,
        jobs: JobStore,
        video_dir: Path,
        retention_days: int,
        *,
        users: UserStore | None = None,
        cap_bytes: int | None = None,
        data_retention_days: int = 0,
        videos: VideoStore | None = None,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.videos = videos
        """Deletes the objects of rows that point into an object store (``VIDEO_STORE``)."""
        self.users = users
        self.video_dir = Path(video_dir)
        self.retention_days = retention_days
        self.cap_bytes = cap_bytes
        self.data_retention_days = data_retention_days
        self.interval = interval
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._warned_outside: set[int] = set()
        self._room_lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.retention_days > 0 or bool(self.cap_bytes) or self.data_retention_days > 0

    async def make_room(self) -> bool:
        """With ``VIDEO_DIR_MAX_GB``: delete the oldest finished jobs' files until the videos
        take less than the cap. False when they still do not (active jobs hold the space): a new
        job is then refused. Always True without a cap."""
        if not self.cap_bytes:
            return True
        _files, used = await asyncio.to_thread(disk_usage, self.video_dir)
        if used < self.cap_bytes:
            return True
        async with self._room_lock:
            candidates = [
                (job.id, paths)
                for job in await self.jobs.expired_files(self.clock() + 1)
                if not _remote(paths := _stored_paths(job.video_path, job.video_meta))
            ]
            freed, used = await asyncio.to_thread(
                free_space, self.video_dir, candidates, self.cap_bytes
            )
            for job_id in freed:
                await self.jobs.mark_files_deleted(job_id)
        if freed:
            log.info(
                "janitor: VIDEO_DIR_MAX_GB reached: files of %d oldest jobs deleted", len(freed)
            )
        return used < self.cap_bytes

    async def forget_old_texts(self) -> tuple[int, int]:
        """With ``DATA_RETENTION_DAYS``: blank the prompts of jobs and the names of users older
        than that, and delete the photos of photo jobs (``job_images``); returns (jobs, users)
        changed."""
        if self.data_retention_days <= 0:
            return 0, 0
        cutoff = self.clock() - self.data_retention_days * DAY
        jobs = await self.jobs.forget_prompts(cutoff)
        users = await self.users.forget_names(cutoff) if self.users is not None else 0
        photos = await ImageStore(self.jobs.conn).forget_before(cutoff)
        if jobs or users or photos:
            log.info(
                "janitor: DATA_RETENTION_DAYS: texts of %d jobs, names of %d users, photos of"
                " %d jobs forgotten",
                jobs,
                users,
                photos,
            )
        return jobs, users

    def start(self) -> None:
        if not self.enabled:
            log.info("janitor: VIDEO_RETENTION_DAYS=0, videos are kept forever")
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="video-janitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("janitor: sweep failed; trying again in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

    async def run_once(self) -> SweepReport | None:
        """One sweep now (and the cap and the data retention); None when video retention is off
        (``VIDEO_RETENTION_DAYS=0``)."""
        await self.make_room()
        await self.forget_old_texts()
        if self.retention_days <= 0:
            return None
        cutoff = self.clock() - self.retention_days * DAY
        expired = [
            (job.id, _stored_paths(job.video_path, job.video_meta))
            for job in await self.jobs.expired_files(cutoff)
        ]
        references, keep_ids = await self.jobs.file_references()
        local = [(job_id, paths) for job_id, paths in expired if not _remote(paths)]
        report = await asyncio.to_thread(sweep, self.video_dir, local, references, keep_ids, cutoff)
        remote = [(job_id, paths) for job_id, paths in expired if _remote(paths)]
        await self._sweep_store(remote, references, keep_ids, cutoff, report)
        for job_id in report.jobs:
            await self.jobs.mark_files_deleted(job_id)
        new_outside = [i for i in report.outside if i not in self._warned_outside]
        if new_outside:
            self._warned_outside.update(new_outside)
            log.warning(
                "janitor: jobs %s point outside %s; their files are left alone",
                ", ".join(map(str, new_outside)),
                self.video_dir,
            )
        if report.files or report.jobs or report.errors:
            log.info(
                "janitor: deleted %d files (%s freed) older than %d days: %d jobs, %d orphans;"
                " %d not deletable",
                report.files,
                megabytes(report.bytes),
                self.retention_days,
                len(report.jobs),
                report.orphans,
                report.errors,
            )
        return report

    async def _sweep_store(
        self,
        expired: list[tuple[int, list[str]]],
        references: set[str],
        keep_ids: set[int],
        cutoff: float,
        report: SweepReport,
    ) -> None:
        """The object-store side of :meth:`run_once`: expired jobs' objects, then orphans."""
        videos = self.videos
        for job_id, locations in expired:
            if videos is None or not all(videos.owns(location) for location in locations):
                report.outside.append(job_id)  # e.g. s3:// rows after VIDEO_STORE was unset
                continue
            try:
                for location in locations:
                    if await videos.delete(location):
                        report.files += 1
            except VideoStoreError as error:
                log.warning("janitor: job %s: %s", job_id, error)
                report.errors += 1
                continue
            report.jobs.append(job_id)
        if videos is None:
            return
        try:
            orphans = await videos.orphans(cutoff)
        except VideoStoreError as error:
            log.warning("janitor: %s", error)
            report.errors += 1
            return
        for job_id, location in orphans:
            if job_id in keep_ids or location in references:
                continue
            try:
                await videos.delete(location)
            except VideoStoreError as error:
                log.warning("janitor: %s", error)
                report.errors += 1
                continue
            report.files += 1
            report.orphans += 1


def _remote(paths: list[str]) -> bool:
    """Whether a job's stored files are objects (``s3://…``) rather than local paths."""
    return any(is_s3_uri(path) for path in paths)


def _stored_paths(video_path: str | None, meta: dict | None) -> list[str]:
    paths = [video_path] if video_path else []
    thumbnail = (meta or {}).get("thumbnail")
    if thumbnail and thumbnail not in paths:
        paths.append(str(thumbnail))
    return paths
