"""A flooding user slows nobody else (issue: fairness under floods).

One user sends 300 ``/help`` in a burst while the fake Bot API, like Telegram, allows about 30
calls a second per bot; another user's ``/start`` right after must be answered within 2 s, and
the flooder gets at most 30 replies (the burst, then one notice). Over real HTTP, the real bot.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.e2e.harness import running_bot
from tests.fakes.telegram import FakeTelegram
from tests.reliability.harness import FIGURES

pytestmark = pytest.mark.reliability

FLOODER, OTHER = 4242, 4343


async def test_a_flood_of_one_user_does_not_delay_another(tmp_path: Path) -> None:
    async with FakeTelegram() as tg:
        tg.per_second_limit = 30
        async with running_bot(tg, tmp_path, flood_burst=10, flood_rate=0.5):
            for _ in range(300):
                tg.push_message("/help", user_id=FLOODER)
            start = time.monotonic()
            tg.push_message("/start", user_id=OTHER)
            await tg.wait_for(lambda: tg.texts_to(OTHER), timeout=10)
            waited = time.monotonic() - start
            # The flooder's admitted replies trickle out at their chat's pace: wait for the burst
            # and the notice, then a little more, before counting.
            await tg.wait_for(
                lambda: len(tg.calls_of("sendMessage", FLOODER, ok=True)) >= 11, timeout=20
            )
            await asyncio.sleep(1.0)
            flooder_replies = len(tg.calls_of("sendMessage", FLOODER, ok=True))
            refused = len([c for c in tg.calls if c.status == 429])
    FIGURES["flood"] = {
        "flood_updates": 300,
        "other_user_answered_s": round(waited, 2),
        "flooder_replies": flooder_replies,
        "api_429s": refused,
    }
    assert waited < 2.0
    assert 1 <= flooder_replies <= 30
    notices = [t for t in tg.texts_to(FLOODER) if t.startswith("⏳ Слишком часто")]
    assert len(notices) == 1


async def test_admins_are_never_throttled(tmp_path: Path) -> None:
    async with (
        FakeTelegram() as tg,
        running_bot(tg, tmp_path, flood_burst=2, flood_rate=0.1, admin_ids=[FLOODER]),
    ):
        for _ in range(6):
            tg.push_message("/help", user_id=FLOODER)
        await tg.wait_for(lambda: len(tg.texts_to(FLOODER)) == 6, timeout=10)


async def test_a_throttled_button_press_still_stops_the_spinner(tmp_path: Path) -> None:
    async with FakeTelegram() as tg, running_bot(tg, tmp_path, flood_burst=1, flood_rate=0.01):
        tg.push_message("/help", user_id=OTHER)
        await tg.wait_for(lambda: tg.texts_to(OTHER))
        press = tg.push_callback("set:open::", user_id=OTHER, message_id=1)
        answers = await tg.wait_for(
            lambda: [
                c for c in tg.calls_of("answerCallbackQuery")
                if c.params["callback_query_id"] == press
            ]
        )  # fmt: skip
        assert "Слишком часто" in answers[0].params["text"]
