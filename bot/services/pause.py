"""The operator's pause switch (/pause, /resume): one object, stored in the database.

While paused, the generation loop claims nothing (queued jobs wait in the queue) and new requests
are still accepted and told that generation is paused. The flag lives in ``app_state``, so a
restart keeps a paused bot paused and every process sharing the database sees the same switch.
In-process waiters (the loop) are woken at once through :meth:`wait_change`; other processes
notice within their idle poll.
"""

from __future__ import annotations

import asyncio
import contextlib

from bot.storage.state import StateStore

KEY = "paused"


class PauseSwitch:
    def __init__(self, state: StateStore) -> None:
        self.state = state
        self._changed = asyncio.Event()

    async def is_paused(self) -> bool:
        return await self.state.get(KEY) == "1"

    async def pause(self) -> bool:
        """Pause; False if it was already paused."""
        return await self._set("1")

    async def resume(self) -> bool:
        """Resume; False if it was not paused."""
        return await self._set("0")

    async def _set(self, value: str) -> bool:
        if (await self.state.get(KEY) or "0") == value:
            return False
        changed = await self.state.set(KEY, value)
        self._changed.set()
        return changed

    async def wait_change(self, timeout: float) -> None:
        """Return when this process flips the switch, or after ``timeout`` seconds."""
        self._changed.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)
