"""The content policy's words: refusals that never echo the text, the admins' alert, /stats."""

from __future__ import annotations

from bot.i18n import _


def refused() -> str:
    """A request whose text the operator's list blocks (the text is not quoted back)."""
    return _(
        "🚫 I cannot make this video: the request goes against the rules of this bot. Nothing "
        "was queued. Try describing something else."
    )


def render_refused() -> str:
    """The final word of a job stopped in the worker (``FailReason.CONTENT_POLICY``)."""
    return _(
        "🚫 The request was stopped before rendering: it goes against the rules of this bot. "
        "Nothing was generated and it does not count against your daily budget."
    )


def withheld() -> str:
    """The final word of a job whose video the classifier flagged (``FailReason.WITHHELD``)."""
    return _(
        "🚫 The video is not sent: an automatic check found that it goes against the rules of "
        "this bot. The administrator has been told. Try another description."
    )


def admin_withheld(job_id: int, user_id: int) -> str:
    return _(
        "⚠️ Content check: the video of job {job} (user {user}) was withheld and deleted; "
        "nothing was sent."
    ).format(job=job_id, user=user_id)


def stats_line(counts: dict[str, tuple[int, int]]) -> str:
    """``counts``: ``{kind: (today, total)}`` of ``bot.storage.policy.PolicyKind``."""

    def pair(kind: str) -> str:
        today, total = counts.get(kind, (0, 0))
        return f"{today}/{total}"

    return _(
        "Content policy (today/total): requests refused {prompt}, stopped at rendering "
        "{render}, videos withheld {video}"
    ).format(prompt=pair("prompt"), render=pair("render"), video=pair("video"))
