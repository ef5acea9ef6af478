"""A worker's row in ``workers``: registered at start with its model's defaults, bounds and
tiers, touched every few seconds while it runs, marked stopped on a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from bot.storage.workers import model_info_dict

if TYPE_CHECKING:
    from bot.backend import ModelInfo
    from bot.storage.workers import WorkerStore

log = logging.getLogger(__name__)


class WorkerPresence:
    def __init__(
        self, store: WorkerStore, worker_id: str, model: ModelInfo, interval: float = 5.0
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.model = model
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.register(
            self.worker_id, model_info_dict(self.model), self.model.device_info()
        )
        self._task = asyncio.create_task(self._run(), name="worker-presence")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.store.seen(self.worker_id)
            except Exception as error:
                log.warning("worker %s: last_seen not updated: %s", self.worker_id, error)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.store.stopped(self.worker_id)
