"""Logging setup that can never print the bot token.

The Bot API puts the token in every URL (``/bot<token>/sendVideo``), and aiohttp and aiogram
include URLs in some exception texts and debug lines. Rather than trusting each library, the one
root handler formats every record — message, arguments and traceback — and then masks every
registered secret in the final text. :func:`mask` does the same for strings the bot stores or
shows (an exception text saved as a job's error).
"""

from __future__ import annotations

import logging
import sys

_secrets: set[str] = set()
MASK = "***"


def register_secret(secret: str) -> None:
    """Mask ``secret`` (and, for a token ``id:key``, the key alone) from now on."""
    secret = secret.strip()
    if not secret:
        return
    _secrets.add(secret)
    _, sep, key = secret.partition(":")
    if sep and len(key) >= 8:
        _secrets.add(key)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class MaskingFormatter(logging.Formatter):
    """A formatter whose output, tracebacks included, never contains a registered secret."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class MaskingFilter(logging.Filter):
    """For handlers we do not own: renders the message early and masks it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format must not hide the record
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str = "INFO", secrets: tuple[str, ...] = ()) -> None:
    """One stderr handler on the root logger, masking ``secrets``; quiet noisy libraries."""
    for secret in secrets:
        register_secret(secret)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiogram logs every handled update at INFO; keep it, but not aiohttp's access chatter.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
