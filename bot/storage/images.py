"""The photos of photo requests (``job_images``, migration 0008): one fitted image per job.

Why a table of its own and not a file in ``VIDEO_DIR`` or a column of ``jobs``: the image must be
as durable as the job and travel with it — written in the same transaction as the job's row (a
crash leaves both or neither), read by whichever worker claims the job, even on another machine
sharing the database — while ``SELECT * FROM jobs``, which every queue view runs, never drags a
few hundred kilobytes per row along. The fitted PNG is small (832×480 ≈ 0.3–0.6 MB), and the
row goes with the job (``ON DELETE CASCADE``) or with ``DATA_RETENTION_DAYS`` (:meth:`forget_before`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiosqlite


@dataclass(frozen=True)
class JobImage:
    """A job's conditioning image: PNG bytes of exactly the job's video size."""

    job_id: int
    data: bytes
    mime: str
    width: int
    height: int
    source_width: int | None = None
    source_height: int | None = None


class ImageStore:
    """Reads and writes of ``job_images`` (on the jobs' connection: :meth:`put` joins the
    transaction that creates the job)."""

    def __init__(self, conn: aiosqlite.Connection, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.clock = clock

    async def put(self, image: JobImage) -> None:
        """Store ``image`` for its job; a second put for the same job (a replayed update that
        found its job) changes nothing."""
        async with self.conn.execute(
            "INSERT INTO job_images (job_id, data, mime, width, height, source_width,"
            " source_height, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                image.job_id,
                bytes(image.data),
                image.mime,
                image.width,
                image.height,
                image.source_width,
                image.source_height,
                self.clock(),
            ),
        ) as cursor:
            del cursor

    async def get(self, job_id: int) -> JobImage | None:
        rows = await self.conn.execute_fetchall(
            "SELECT job_id, data, mime, width, height, source_width, source_height"
            " FROM job_images WHERE job_id = ?",
            (job_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return JobImage(
            job_id=row["job_id"],
            data=bytes(row["data"]),
            mime=row["mime"],
            width=row["width"],
            height=row["height"],
            source_width=row["source_width"],
            source_height=row["source_height"],
        )

    async def with_images(self, job_ids: Iterable[int]) -> set[int]:
        """Which of ``job_ids`` are photo jobs (/history marks them)."""
        ids = list(job_ids)
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        rows = await self.conn.execute_fetchall(
            f"SELECT job_id FROM job_images WHERE job_id IN ({marks})", ids
        )
        return {row["job_id"] for row in rows}

    async def forget_before(self, before_ts: float) -> int:
        """``DATA_RETENTION_DAYS``: delete the photos of jobs that ended (delivered, cancelled,
        failed, undeliverable) before ``before_ts``; returns how many were deleted. The photo of
        a job still queued, rendering or awaiting delivery always stays."""
        from bot.storage.jobs import JobStatus

        final = JobStatus.FINAL
        marks = ", ".join("?" for _ in final)
        async with self.conn.execute(
            "DELETE FROM job_images WHERE job_id IN (SELECT id FROM jobs"
            f" WHERE status IN ({marks})"
            " AND COALESCE(finished_at, generated_at, created_at) < ?)",
            (*final, before_ts),
        ) as cursor:
            return cursor.rowcount
