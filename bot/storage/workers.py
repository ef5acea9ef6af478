"""The ``workers`` table (migration 0007): every GPU worker that started, what its model allows,
and when it was last seen.

A worker writes its model's defaults, bounds and tiers here at start (:meth:`WorkerStore.register`)
and touches ``last_seen`` while it runs; a front end (``ROLE=frontend``) loads no model, so it
validates requests with what the newest worker registered (:class:`RegisteredModel`), and
``/stats`` lists the workers. Times come from the database clock (``bot/storage/clock.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import aiosqlite

from bot.backend import ImageModel
from bot.storage.clock import now_sql
from pipeline.options import GenerationDefaults, ModelLimits
from pipeline.quality import MagCacheData, TierSupport


@dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    model_info: dict[str, Any]
    device: str
    started_at: float
    last_seen: float
    stopped_at: float | None


class WorkerStore:
    """Reads and writes of ``workers``."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def register(self, worker_id: str, model_info: dict[str, Any], device: str) -> None:
        """Record a starting worker (a restart with the same id overwrites its row)."""
        now = now_sql(self.conn)
        async with self.conn.execute(
            "INSERT INTO workers (worker_id, model_info, device, started_at, last_seen)"
            f" VALUES (?, ?, ?, {now}, {now}) ON CONFLICT (worker_id) DO UPDATE SET"
            " model_info = excluded.model_info, device = excluded.device,"
            " started_at = excluded.started_at, last_seen = excluded.last_seen, stopped_at = NULL",
            (worker_id, json.dumps(model_info, ensure_ascii=False), device),
        ):
            pass

    async def seen(self, worker_id: str) -> None:
        async with self.conn.execute(
            f"UPDATE workers SET last_seen = {now_sql(self.conn)} WHERE worker_id = ?",
            (worker_id,),
        ):
            pass

    async def stopped(self, worker_id: str) -> None:
        """A graceful stop: the worker is listed as stopped, not as lost."""
        now = now_sql(self.conn)
        async with self.conn.execute(
            f"UPDATE workers SET last_seen = {now}, stopped_at = {now} WHERE worker_id = ?",
            (worker_id,),
        ):
            pass

    async def all(self) -> list[WorkerRow]:
        """Every worker, the most recently seen first."""
        rows = await self.conn.execute_fetchall(
            "SELECT * FROM workers ORDER BY last_seen DESC, worker_id"
        )
        return [
            WorkerRow(
                worker_id=row["worker_id"],
                model_info=json.loads(row["model_info"]),
                device=row["device"],
                started_at=row["started_at"],
                last_seen=row["last_seen"],
                stopped_at=row["stopped_at"],
            )
            for row in rows
        ]

    async def latest(self) -> WorkerRow | None:
        """The most recently seen worker (its model is what new requests are validated with)."""
        rows = await self.all()
        return rows[0] if rows else None

    async def now(self) -> float:
        """The database clock, UNIX seconds (to tell how long ago a worker was seen)."""
        rows = await self.conn.execute_fetchall(f"SELECT {now_sql(self.conn)}")
        return float(rows[0][0])


def model_info_dict(model: Any) -> dict[str, Any]:
    """What a front end needs of a loaded model (``bot.backend.ModelInfo``), as JSON data."""
    return {
        "defaults": asdict(model.defaults),
        "limits": asdict(model.limits),
        "reads_russian": bool(model.reads_russian),
        "tiers": asdict(model.tiers),
        "device": model.device_info(),
        # I2V_MODEL: photo requests are validated against the image model's own bounds.
        "image_model": (
            {"defaults": asdict(image.defaults), "limits": asdict(image.limits)}
            if (image := model.image_model) is not None
            else None
        ),
    }


@dataclass(frozen=True)
class RegisteredModel:
    """A ``bot.backend.ModelInfo`` read from a worker's ``workers`` row: the front end's view of
    the model it never loads (the operator's ``DEFAULT_*``/``MAX_*`` are already applied by the
    worker, whose settings are the same .env)."""

    defaults: GenerationDefaults
    limits: ModelLimits
    reads_russian: bool
    tiers: TierSupport
    device: str
    image_model: ImageModel | None = None
    """The workers' image-to-video model (``I2V_MODEL``), None when they load none."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisteredModel:
        tiers = dict(data.get("tiers") or {})
        cache = tiers.get("cache")
        if cache is not None:
            cache = MagCacheData(**{**cache, "mag_ratios": tuple(cache["mag_ratios"])})
        return cls(
            defaults=GenerationDefaults(**data["defaults"]),
            limits=ModelLimits(**data["limits"]),
            reads_russian=bool(data.get("reads_russian")),
            tiers=TierSupport(
                distilled=bool(tiers.get("distilled")),
                cache=cache,
                fast_steps=tiers.get("fast_steps"),
            ),
            device=str(data.get("device", "")),
            image_model=(
                ImageModel(GenerationDefaults(**image["defaults"]), ModelLimits(**image["limits"]))
                if (image := data.get("image_model"))
                else None
            ),
        )

    def device_info(self) -> str:
        return f"remote workers ({self.device})"
