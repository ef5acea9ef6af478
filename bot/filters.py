"""Filters shared by the routers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message


def admin_ids(settings: Any) -> frozenset[int]:
    """``ADMIN_IDS`` from the settings object (a set, list or comma-separated string)."""
    raw = getattr(settings, "admin_ids", None) if settings is not None else None
    if not raw:
        return frozenset()
    if isinstance(raw, str):
        raw = [part for part in raw.replace(" ", "").split(",") if part]
    values: Iterable[Any] = raw if isinstance(raw, Iterable) else [raw]
    return frozenset(int(value) for value in values)


def is_admin(user_id: int | None, settings: Any) -> bool:
    return user_id is not None and user_id in admin_ids(settings)


class IsAdmin(Filter):
    """Passes only for users listed in ``ADMIN_IDS`` (``settings`` comes from the workflow data)."""

    async def __call__(self, event: Message | CallbackQuery, settings: Any = None) -> bool:
        user = event.from_user
        return is_admin(user.id if user else None, settings)
