"""The operator's content policy: blocked words (``words``, ``content``); the NSFW classifier of
finished videos lives in ``pipeline/nsfw.py`` (it needs torch) and is run by the worker."""

from bot.policy.content import ContentPolicy, PolicyFileError, Verdict

__all__ = ["ContentPolicy", "PolicyFileError", "Verdict"]
