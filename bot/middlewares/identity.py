"""Who really asks: a person, or the chat a message was posted as.

Telegram sends messages posted *as a channel* (in a group or a channel's discussion group) from
the shared service account ``Channel_Bot``, and messages of anonymous group admins from
``GroupAnonymousBot``, with the real sender in ``sender_chat``. Keyed by the service account,
every channel poster would share one user's limits, bans and history. So a message with a
``sender_chat`` is that chat's request: its id (negative, as Telegram's chat ids are) is the
requester's id everywhere — limits, budgets, flood buckets, bans, history. An anonymous admin's
``sender_chat`` is the group itself: the group's anonymous admins are one requester.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import Message, TelegramObject, User


@dataclass(frozen=True)
class Requester:
    id: int
    """A user id, or (posting as a chat) the chat's negative id."""
    username: str | None
    name: str | None
    language_code: str | None
    is_chat: bool


def requester_of(event: TelegramObject, from_user: User | None) -> Requester | None:
    """The requester of an update (None when nobody can be answered, e.g. a service update)."""
    sender_chat = event.sender_chat if isinstance(event, Message) else None
    if sender_chat is not None:
        return Requester(
            id=sender_chat.id,
            username=sender_chat.username,
            name=sender_chat.title,
            language_code=None,
            is_chat=True,
        )
    if from_user is None:
        return None
    return Requester(
        id=from_user.id,
        username=from_user.username,
        name=from_user.first_name,
        language_code=from_user.language_code,
        is_chat=False,
    )
