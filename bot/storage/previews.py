"""Live previews of jobs rendered in other processes (``job_previews``, migration 0012).

In one process the render's ``Progress.preview`` reaches the status message directly. A worker
in another process (``python -m bot.worker``) only shares the database with the front end, so the
newest preview travels through it: the worker's heartbeat path writes it (:meth:`put`, fenced by
the attempt, only when a newer one exists), the front end's ``JobWatcher`` reads the step marks
of the jobs it follows (:meth:`marks`, no image bytes) and loads an image (:meth:`get`) only when
it is newer than the one it showed. One row per job, overwritten in place: a preview is a few
kilobytes (≤ :data:`MAX_SIDE` px, ≤ :data:`MAX_BYTES`), and only the newest matters.

Why a table of its own and not columns of ``jobs``: every queue view reads ``SELECT * FROM
jobs``, and must not drag image bytes along; the row also goes away on its own terms — deleted
when the render ends (:meth:`delete`) and, for a worker killed mid-render, by the reaper
(:meth:`forget_stale`), whatever the retention settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.storage.clock import now_sql
from bot.storage.engine import Database

MAX_SIDE = 320
"""Largest side of a stored preview (``pipeline/preview.py`` makes them this small)."""
MAX_BYTES = 200_000
"""Largest stored preview: a bigger one is not worth a database write every heartbeat."""


@dataclass(frozen=True)
class StoredPreview:
    """The newest preview of attempt ``attempt`` of ``job_id``, made at denoising ``step``."""

    job_id: int
    attempt: int
    step: int
    width: int
    height: int
    data: bytes


def fits(width: int, height: int, data: bytes) -> bool:
    """Small enough to store: ≤ :data:`MAX_SIDE` px a side and ≤ :data:`MAX_BYTES`."""
    return 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and 0 < len(data) <= MAX_BYTES


class PreviewStore:
    """Reads and writes of ``job_previews`` (on the jobs' connection)."""

    def __init__(self, conn: Database) -> None:
        self.conn = conn

    async def put(
        self, job_id: int, attempt: int, step: int, width: int, height: int, data: bytes
    ) -> bool:
        """Store the preview of ``attempt`` if that attempt is still the job's running one and
        the preview is small (:func:`fits`); never replace a later attempt's or step's. Returns
        whether it was stored."""
        if not fits(width, height, data):
            return False
        now = now_sql(self.conn)
        async with self.conn.execute(
            "INSERT INTO job_previews (job_id, attempt, step, width, height, data, updated_at)"
            f" SELECT ?, ?, ?, ?, ?, ?, {now} WHERE EXISTS (SELECT 1 FROM jobs"
            " WHERE id = ? AND attempts = ? AND status = 'running')"
            " ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt,"
            " step = excluded.step, width = excluded.width, height = excluded.height,"
            " data = excluded.data, updated_at = excluded.updated_at"
            " WHERE job_previews.attempt < excluded.attempt"
            " OR (job_previews.attempt = excluded.attempt AND job_previews.step < excluded.step)",
            (job_id, attempt, step, width, height, bytes(data), job_id, attempt),
        ) as cursor:
            return cursor.rowcount > 0

    async def marks(self, job_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """Job id → (attempt, step) of its stored preview, for those of ``job_ids`` that have
        one (no image bytes read)."""
        ids = list(job_ids)
        if not ids:
            return {}
        places = ", ".join("?" for _ in ids)
        rows = await self.conn.execute_fetchall(
            f"SELECT job_id, attempt, step FROM job_previews WHERE job_id IN ({places})", ids
        )
        return {row["job_id"]: (row["attempt"], row["step"]) for row in rows}

    async def get(self, job_id: int) -> StoredPreview | None:
        rows = await self.conn.execute_fetchall(
            "SELECT job_id, attempt, step, width, height, data FROM job_previews WHERE job_id = ?",
            (job_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return StoredPreview(
            job_id=row["job_id"],
            attempt=row["attempt"],
            step=row["step"],
            width=row["width"],
            height=row["height"],
            data=bytes(row["data"]),
        )

    async def delete(self, job_id: int, attempt: int) -> None:
        """The render of ``attempt`` ended: its preview is of no more use (a later attempt's
        row stays)."""
        async with self.conn.execute(
            "DELETE FROM job_previews WHERE job_id = ? AND attempt <= ?", (job_id, attempt)
        ) as cursor:
            del cursor

    async def forget_stale(self) -> int:
        """Delete the previews of attempts that no longer render (a worker killed mid-render,
        a job ended or requeued); returns how many."""
        async with self.conn.execute(
            "DELETE FROM job_previews WHERE NOT EXISTS (SELECT 1 FROM jobs"
            " WHERE jobs.id = job_previews.job_id AND jobs.attempts = job_previews.attempt"
            " AND jobs.status = 'running')",
            (),
        ) as cursor:
            return cursor.rowcount
