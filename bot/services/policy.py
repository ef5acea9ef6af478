"""The content policy as the bot applies it: check, count, log — never echo.

:class:`PolicyService` wraps the operator's :class:`bot.policy.ContentPolicy` (blocked words)
with what a refusal means for the bot: one more in ``policy_counts`` (/stats), and one log line
for admins that names the user, the job if any, and *which list entry* matched (line number and a
short hash) — never the user's text, and never the matched words. The request service calls
:meth:`screen` for every request; the worker calls :meth:`record` after refusing a translated
prompt or withholding a video.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.policy.content import ContentPolicy, Verdict
from bot.storage.policy import PolicyCounts

log = logging.getLogger("bot.policy")


class PolicyService:
    def __init__(self, words: ContentPolicy, counts: PolicyCounts) -> None:
        self.words = words
        self.counts = counts

    def check(self, text: str | None) -> Verdict:
        """The verdict on one text, counting and logging nothing (e.g. before showing a shared
        prompt)."""
        return self.words.check(text)

    async def screen(
        self, user_id: int, texts: Iterable[str | None], *, kind: str, job_id: int | None = None
    ) -> Verdict:
        """Check ``texts``; a blocked verdict is counted and logged (without the text)."""
        verdict = self.words.check_all(*texts)
        if verdict.blocked:
            await self.record(kind, user_id, job_id, verdict.describe())
        return verdict

    async def record(self, kind: str, user_id: int, job_id: int | None, detail: str) -> None:
        """Count a refusal of ``kind`` and log it for admins; a failing counter never turns a
        refusal into an acceptance."""
        job = f" job {job_id}" if job_id is not None else ""
        log.warning("content policy: %s refused for user %s%s: %s", kind, user_id, job, detail)
        try:
            await self.counts.add(kind)
        except Exception:
            log.exception("content policy: the refusal could not be counted")
