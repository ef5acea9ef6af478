"""Every text a user sees, as functions of numbers and names, in the current locale.

Each module here formats one area (``help``, ``requests``, ``status``, ``queue``, ``settings``,
``admin``); the words come from the gettext catalogues (``bot/locales``, :mod:`bot.i18n`): the
English msgids below are the source, Russian is the default translation. Functions only format;
they make no decisions. Messages are sent with ``parse_mode=None`` (plain text), so user prompts
need no escaping and can never inject markup.
"""

from __future__ import annotations

from datetime import datetime, timezone

BAR_WIDTH = 12
CAPTION_LIMIT = 1024
MESSAGE_LIMIT = 4096
ALERT_LIMIT = 200
"""``answerCallbackQuery`` shows at most 200 characters."""


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + "…"


def one_line(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters (for lists of prompts)."""
    return shorten(" ".join(text.split()), limit)


def progress_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "▓" * filled + "░" * (width - filled)


def percent(fraction: float | None) -> str:
    return f"{round(100 * max(0.0, min(1.0, fraction or 0.0)))}%"


def utc_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%d.%m %H:%M")
