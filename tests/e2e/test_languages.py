"""Each user is answered in their language: English for an English Telegram, Russian by default,
and the choice in /settings wins over both. Over the fake Bot API, through the real bot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.telegram.keyboards import RepeatCb, SettingsCb
from tests.e2e.harness import answered, new_texts, reply_to, running_bot
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import MODES, FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("mode", MODES)]

JOHN, IVAN = 3001, 3002
CYRILLIC = re.compile("[А-Яа-яЁё]")


def buttons(markup: dict | None) -> list[str]:
    return [b["text"] for row in (markup or {}).get("inline_keyboard", []) for b in row]


async def test_an_english_user_gets_everything_in_english(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path, FakeBackend(step_delay=0.05)):
        tg.push_message("/start", user_id=JOHN, language_code="en-US")
        (start,) = await new_texts(tg, JOHN, 0)
        assert start.startswith("Hi! I turn text into a short video.")
        tg.push_message("/help", user_id=JOHN, language_code="en")
        (text,) = await new_texts(tg, JOHN, 1)
        assert text.startswith("How to use") and "--steps N" in text and not CYRILLIC.search(text)

        bad = tg.push_message("a cat --steps 9999", user_id=JOHN, language_code="en")
        refusal = await reply_to(tg, JOHN, bad)
        assert "Option --steps (steps)" in refusal and "The request was not queued" in refusal

        request = tg.push_message("a cat plays the piano", user_id=JOHN, language_code="en")
        await reply_to(tg, JOHN, request)
        first = [c.params["text"] for c in tg.calls_of("sendMessage", JOHN, ok=True)][-1]
        assert first.startswith("⏳ Request #") and "accepted" in first
        (video,) = await tg.wait_for(lambda: tg.videos(JOHN))
        caption = video.params["caption"]
        assert "Seed:" in caption and "frames" in caption and "fps" in caption
        assert not CYRILLIC.search(caption)
        assert buttons(video.params.get("reply_markup")) == [
            "🔁 Another take",
            "🔗 Share",
            "⚙️ Settings",
        ]
        # Every text the English user saw while the job ran: not a word of Russian.
        seen = [m.text or "" for m in tg.sent(JOHN)] + [
            text for m in tg.sent(JOHN) for _, text in m.edits
        ]
        assert seen and not any(CYRILLIC.search(t) for t in seen), seen

        press = tg.push_callback(
            RepeatCb(job_id=999_999).pack(),
            user_id=JOHN,
            message_id=video.result["message_id"],
            language_code="en",
        )
        assert await answered(tg, press) == (
            "This button belongs to someone else's job — nothing was changed."
        )


async def test_a_russian_user_and_a_user_without_a_language_get_russian(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with running_bot(tg, tmp_path):
        for user, code in ((IVAN, "ru"), (IVAN + 1, None), (IVAN + 2, "uk")):
            tg.push_message("/start", user_id=user, language_code=code)
            (start,) = await new_texts(tg, user, 0)
            assert start.startswith("Привет!")


async def test_settings_switch_the_language_and_it_sticks(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path):
        tg.push_message("/settings", user_id=IVAN, language_code="ru")
        await new_texts(tg, IVAN, 0)
        (settings,) = [m for m in tg.sent(IVAN) if m.reply_markup]
        assert "Язык (language): Русский" in (settings.text or "")
        assert buttons(settings.reply_markup)[-3:-1] == ["✅ Русский", "English"]

        press = tg.push_callback(
            SettingsCb(action="set", name="language", value="en").pack(),
            user_id=IVAN,
            message_id=settings.message_id,
            language_code="ru",
        )
        assert await answered(tg, press) == "Saved"
        await tg.wait_for(lambda: "Your settings" in (settings.text or ""))
        assert "Language: English" in (settings.text or "")
        assert buttons(settings.reply_markup)[-3:-1] == ["Русский", "✅ English"]

        # The choice outranks Telegram's language_code, in messages and in the queue's texts.
        before = len(tg.texts_to(IVAN))
        tg.push_message("/start", user_id=IVAN, language_code="ru")
        assert (await new_texts(tg, IVAN, before))[0].startswith("Hi!")
        request = tg.push_message("кот играет на пианино", user_id=IVAN, language_code="ru")
        await reply_to(tg, IVAN, request)
        first = [c.params["text"] for c in tg.calls_of("sendMessage", IVAN, ok=True)][-1]
        assert first.startswith("⏳ Request #")
        (video,) = await tg.wait_for(lambda: tg.videos(IVAN))
        assert "Seed:" in video.params["caption"]

    # After a restart too: it is stored with the user.
    async with running_bot(tg, tmp_path):
        before = len(tg.texts_to(IVAN))
        tg.push_message("/help", user_id=IVAN, language_code="ru")
        assert (await new_texts(tg, IVAN, before))[0].startswith("How to use")
