"""The fake Bot API server every end-to-end test talks to, and the mode the bot receives in.

``mode`` is ``polling`` unless a module parametrizes it: ``pytestmark =
pytest.mark.parametrize("mode", MODES)`` runs each of its tests once per mode
(``tests.e2e.harness.running_bot`` reads it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.e2e.harness import MODE
from tests.fakes.telegram import FakeTelegram


@pytest.fixture
def mode() -> str:
    return "polling"


@pytest.fixture(autouse=True)
def bot_mode(mode: str) -> Iterator[str]:
    token = MODE.set(mode)
    try:
        yield mode
    finally:
        MODE.reset(token)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server
