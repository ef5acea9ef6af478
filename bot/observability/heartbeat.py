"""When updates last arrived from Telegram: the "updates arrive" part of ``/healthz``.

In long polling, every successful ``getUpdates`` — empty or not, it returns at least every
``POLLING_TIMEOUT`` seconds — is a beat. :meth:`UpdatesHeartbeat.observe` is an
:data:`bot.telegram.session.ApiObserver`: registered on the Bot's session, it hears every
``getUpdates`` made through ``bot(...)``, whichever loop makes it, so polling code needs no call
of its own. A loop that fetches updates some other way calls :meth:`UpdatesHeartbeat.beat` after
each successful fetch.

In webhook mode Telegram calls us only when someone writes, so silence proves nothing: the
webhook start-up calls :meth:`UpdatesHeartbeat.use_webhook`, after which the check is skipped
(each received webhook call may still :meth:`beat`, for the record).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class UpdatesHeartbeat:
    """The time of the last successful fetch of updates (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.created = clock()
        self.last_seen: float | None = None
        """``clock()`` of the last beat; None before the first."""
        self.webhook = False
        """True in webhook mode (:meth:`use_webhook`): updates come when users write."""

    def beat(self) -> None:
        """Updates were fetched (or delivered to the webhook) successfully just now."""
        self.last_seen = self.clock()

    def use_webhook(self) -> None:
        """Webhook mode: the health check stops asking for recent updates."""
        self.webhook = True

    def observe(self, method: str, outcome: str) -> None:
        """:data:`bot.telegram.session.ApiObserver`: a successful ``getUpdates`` is a beat."""
        if method == "getUpdates" and outcome == "ok":
            self.beat()

    def age(self) -> float:
        """Seconds since the last beat (since this object was made, before the first one)."""
        since = self.last_seen if self.last_seen is not None else self.created
        return max(0.0, self.clock() - since)
