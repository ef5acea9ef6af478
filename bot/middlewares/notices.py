"""At most one notice per user per interval: what the flood and access middlewares share.

A flooder or a banned user sending a hundred messages must get one answer, not a hundred: the
answers would cost the bot's own send budget (Telegram's per-bot limits) that other users need.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_TRACKED = 10_000
"""Users remembered at most (the least recently noticed are forgotten: they may get one more)."""


class NoticeLimiter:
    """Remembers when each user was last told; :meth:`due` says whether to tell them now."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: OrderedDict[int, float] = OrderedDict()

    def due(self, user_id: int) -> bool:
        """True (and recorded) when ``user_id`` was not told within the interval."""
        now = self.clock()
        last = self._last.get(user_id)
        if last is not None and now - last < self.interval:
            return False
        self._last[user_id] = now
        self._last.move_to_end(user_id)
        while len(self._last) > MAX_TRACKED:
            self._last.popitem(last=False)
        return True
