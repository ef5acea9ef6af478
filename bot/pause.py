"""The operator's pause switch (/pause, /resume), shared by the admin commands and the loop.

While paused, the generation loop claims nothing (queued jobs wait in SQLite) and new requests
are still accepted and told that the bot is paused. The state lives in memory: a restart
resumes generation, which is the safe default for an operator who forgot to /resume.
"""

from __future__ import annotations

import asyncio


class PauseState:
    def __init__(self) -> None:
        self._running = asyncio.Event()
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> bool:
        """Pause; False if it was already paused."""
        if self.paused:
            return False
        self._running.clear()
        return True

    def resume(self) -> bool:
        """Resume; False if it was not paused."""
        if not self.paused:
            return False
        self._running.set()
        return True

    async def wait_running(self) -> None:
        """Return at once when not paused, else when /resume comes."""
        await self._running.wait()
