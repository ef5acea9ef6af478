"""How the bot replies to a message it may no longer find."""

from __future__ import annotations

from aiogram.types import ReplyParameters


def reply_to(message_id: int | None) -> ReplyParameters | None:
    """A reply to ``message_id`` that is still sent (as a plain message) if the user deleted it."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)
