"""/history and /settings through the real Dispatcher; the settings → options mapping on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import SendMessage
from hypothesis import given
from hypothesis import strategies as st

from bot.services import preferences as us
from bot.telegram.keyboards import RepeatCb, SettingsCb
from bot.texts import queue as queue_texts
from bot.texts import settings as settings_texts
from pipeline.options import GenerationDefaults, ModelLimits, OptionOverrides, resolve_options
from tests.handlers.harness import FeatureEnv, make_settings, open_feature_env, wan_like_backend

ALICE, BOB = 10, 20


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[FeatureEnv]:
    env = await open_feature_env(tmp_path / "bot.sqlite3", admin_ids=[1], fast_steps=4)
    yield env
    await env.close()


def buttons(call: SendMessage) -> list[list[str]]:
    return [[b.text for b in row] for row in call.reply_markup.inline_keyboard]


def callbacks(call: SendMessage) -> list[str]:
    return [b.callback_data for row in call.reply_markup.inline_keyboard for b in row]


# ---------------------------------------------------------------- /history


async def test_history_empty(env: FeatureEnv) -> None:
    assert (await env.send(ALICE, "/history")).last_text() == queue_texts.history_empty()


async def test_history_lists_last_ten_own_jobs_with_repeat_buttons(env: FeatureEnv) -> None:
    ids = [(await env.add_job(ALICE, f"запрос {i}", seed=100 + i)).id for i in range(12)]
    await env.add_job(BOB, "чужой запрос")
    session = await env.send(ALICE, "/history")
    call = session.of(SendMessage)[-1]
    newest = ids[-10:][::-1]
    for job_id in newest:
        assert f"#{job_id}" in call.text
    assert f"#{ids[0]} " not in call.text and f"#{ids[1]} " not in call.text
    assert "запрос 11" in call.text and "зерно 111" in call.text and "в очереди" in call.text
    assert "чужой" not in call.text
    assert callbacks(call) == [RepeatCb(job_id=i).pack() for i in newest]


# ---------------------------------------------------------------- /settings


async def test_settings_shows_current_values_on_buttons(env: FeatureEnv) -> None:
    call = (await env.send(ALICE, "/settings")).of(SendMessage)[-1]
    rows = buttons(call)
    assert rows[0] == ["✅ 16:9", "9:16", "1:1"]  # 832x480 is the operator default
    assert rows[1] == ["короткая", "✅ обычная"]
    assert rows[2] == ["быстро", "✅ баланс", "лучше"]
    assert rows[3] == ["✅ случайное", "фиксированное"]
    assert rows[4] == ["✅ авто", "выкл"]
    assert rows[5] == ["✅ Русский", "English"]  # each language named in itself
    assert rows[6] == [settings_texts.reset_button()]
    assert "832×480" in call.text and "50 шагов" in call.text and "по умолчанию" in call.text


async def test_pressing_a_setting_persists_and_redraws(env: FeatureEnv) -> None:
    data = SettingsCb(action="set", name="aspect", value="9x16").pack()
    session = await env.press(ALICE, data)
    assert session.answers()[-1].text == settings_texts.saved()
    assert await env.users.get_settings(ALICE) == {"aspect": "9x16"}
    edit = session.edits()[-1]
    assert edit.reply_markup.inline_keyboard[0][1].text == "✅ 9:16"
    assert "9:16 (" in edit.text


async def test_pressing_the_current_value_stores_nothing(env: FeatureEnv) -> None:
    session = await env.press(
        ALICE, SettingsCb(action="set", name="quality", value="balanced").pack()
    )
    assert session.answers()[-1].text == settings_texts.unchanged()
    assert await env.users.get_settings(ALICE) == {}  # keeps following the operator's defaults
    assert session.edits() == []


async def test_fixed_seed_and_reset(env: FeatureEnv) -> None:
    await env.press(ALICE, SettingsCb(action="set", name="seed", value="fixed").pack())
    stored = await env.users.get_settings(ALICE)
    assert stored["seed"] == "fixed" and isinstance(stored["seed_value"], int)
    assert str(stored["seed_value"]) in env.session.edits()[-1].text
    session = await env.press(ALICE, SettingsCb(action="reset").pack())
    assert session.answers()[-1].text == settings_texts.reset_done()
    assert await env.users.get_settings(ALICE) == {}
    again = await env.press(ALICE, SettingsCb(action="reset").pack())
    assert again.answers()[-1].text == settings_texts.nothing_to_reset()


@pytest.mark.parametrize(
    "data",
    [
        SettingsCb(action="set", name="aspect", value="4x3").pack(),
        SettingsCb(action="set", name="admin", value="1").pack(),
        SettingsCb(action="nuke").pack(),
        "set:set",  # too few parts
        "rep:abc",  # not a number
        "garbage",
    ],
)
async def test_tampered_settings_data_changes_nothing(env: FeatureEnv, data: str) -> None:
    session = await env.press(ALICE, data)
    assert session.answers()[-1].text == queue_texts.button_broken()
    assert await env.users.get_settings(ALICE) == {}
    assert session.edits() == []


async def test_settings_buttons_in_a_group_change_nothing(env: FeatureEnv) -> None:
    session = await env.press(
        ALICE, SettingsCb(action="set", name="length", value="short").pack(), chat_id=-100
    )
    assert session.answers()[-1].text == settings_texts.only_in_private()
    assert await env.users.get_settings(ALICE) == {}


async def test_settings_button_under_a_video_opens_the_keyboard(env: FeatureEnv) -> None:
    session = await env.press(ALICE, SettingsCb(action="open").pack())
    assert session.answers()
    assert buttons(session.of(SendMessage)[-1])[0][0] == "✅ 16:9"


async def test_settings_persist_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    first = await open_feature_env(path)
    await first.press(ALICE, SettingsCb(action="set", name="length", value="short").pack())
    await first.conn.close()
    second = await open_feature_env(path)
    try:
        call = (await second.send(ALICE, "/settings")).of(SendMessage)[-1]
        assert buttons(call)[1] == ["✅ короткая", "обычная"]
    finally:
        await second.conn.close()


# ---------------------------------------------------------------- settings → options

WAN = wan_like_backend()


def personal(raw: dict, fast_steps: int | None = None) -> OptionOverrides:
    return us.to_personal(raw, WAN.defaults, WAN.limits, fast_steps=fast_steps).overrides


def test_no_settings_means_operator_defaults() -> None:
    assert us.to_personal({}, WAN.defaults, WAN.limits) == us.PersonalDefaults(
        OptionOverrides(), True
    )


def test_aspects_map_to_sizes_the_model_accepts() -> None:
    assert (personal({"aspect": "16x9"}).width, personal({"aspect": "16x9"}).height) == (832, 480)
    tall = personal({"aspect": "9x16"})
    square = personal({"aspect": "1x1"})
    assert tall.height > tall.width and square.width == square.height
    for o in (tall, square):
        assert o.width % 16 == 0 and o.height % 16 == 0 and o.width * o.height <= 832 * 480


def test_length_and_quality() -> None:
    short = personal({"length": "short"}).frames
    assert short < 81 and WAN.limits.valid_frames(short)
    assert personal({"quality": "fast"}).steps == 25
    assert personal({"quality": "fast"}, fast_steps=4).steps == 4
    assert personal({"quality": "best"}).steps is None  # best and balanced: the default steps
    assert personal({"quality": "balanced"}).steps is None
    assert us.steps_for("best", WAN.defaults, WAN.limits) == 50


def test_fast_quality_makes_a_fast_job() -> None:
    fast = personal({"quality": "fast"}, fast_steps=4)
    assert (fast.steps, fast.quality, fast.guidance) == (4, "fast", None)  # no LoRA: guidance as is
    for quality in ("balanced", "best"):
        assert personal({"quality": quality}, fast_steps=4).quality == quality
    assert personal({}).quality is None  # resolves to DEFAULT_QUALITY, balanced
    # With a LoRA (step-distilled) fast jobs run without classifier-free guidance...
    lora = us.to_personal({"quality": "fast"}, WAN.defaults, WAN.limits, distilled=True)
    assert lora.overrides.guidance == 1.0 and lora.overrides.quality == "fast"
    assert lora.overrides.negative_prompt == "" and lora.overrides.steps == 4
    # ...unless the request says otherwise: explicit options win.
    explicit = OptionOverrides(guidance=4.0, steps=12).merged_over(lora.overrides)
    options = resolve_options("кот", explicit, WAN.defaults, WAN.limits)
    assert (options.guidance, options.steps, options.quality) == (4.0, 12, "fast")
    assert not us.to_personal(
        {"quality": "best"}, WAN.defaults, WAN.limits, distilled=True
    ).overrides.guidance


def test_default_quality_serves_users_who_never_picked_one() -> None:
    def mine(raw: dict, default: str) -> OptionOverrides:
        return us.to_personal(raw, WAN.defaults, WAN.limits, default_quality=default).overrides

    assert mine({}, "fast").quality == "fast" and mine({}, "fast").steps == 25
    assert mine({}, "best").quality == "best" and mine({}, "best").steps is None
    assert mine({"quality": "balanced"}, "fast").quality == "balanced"  # a choice beats the default
    assert mine({"quality": "balanced"}, "fast").steps is None
    assert us.effective({}, WAN.defaults, default_quality="fast")["quality"] == "fast"
    settings = make_settings(default_quality="fast", fast_steps=6, fast_lora="x.safetensors")
    assert us.quality_options(settings) == {
        "fast_steps": 6,
        "default_quality": "fast",
        "distilled": True,
    }


async def test_default_quality_fast_reaches_new_jobs_and_the_settings_view(
    tmp_path: Path,
) -> None:
    env = await open_feature_env(
        tmp_path / "bot.sqlite3",
        default_quality="fast",
        fast_steps=4,
    )
    try:
        await env.send(ALICE, "кот на луне")
        await env.send(ALICE, "пёс --steps 9")
        explicit, plain = await env.jobs.user_jobs(ALICE, limit=2)
        assert (plain.options.quality, plain.options.steps, plain.options.guidance) == (
            "fast",
            4,
            5.0,
        )
        assert (explicit.options.quality, explicit.options.steps) == ("fast", 9)
        call = (await env.send(ALICE, "/settings")).of(SendMessage)[-1]
        assert buttons(call)[2] == ["✅ быстро", "баланс", "лучше"]
        assert "4 шага" in call.text
        # Picking "balanced" is a change now: stored, and the next job is not fast.
        await env.press(ALICE, SettingsCb(action="set", name="quality", value="balanced").pack())
        assert await env.users.get_settings(ALICE) == {"quality": "balanced"}
        await env.conn.execute("UPDATE jobs SET status = 'delivered'")
        await env.send(ALICE, "ещё кот")
        latest = (await env.jobs.user_jobs(ALICE, limit=1))[0]
        assert (latest.options.quality, latest.options.steps) == ("balanced", 50)
    finally:
        await env.close()


async def test_fast_with_a_lora_uses_guidance_one_unless_asked(tmp_path: Path) -> None:
    env = await open_feature_env(
        tmp_path / "bot.sqlite3", fast_lora="distilled.safetensors", fast_steps=4
    )
    try:
        await env.press(ALICE, SettingsCb(action="set", name="quality", value="fast").pack())
        await env.send(ALICE, "кот на луне")
        await env.send(ALICE, "кот --guidance 3")
        explicit, plain = await env.jobs.user_jobs(ALICE, limit=2)
        assert (plain.options.quality, plain.options.steps, plain.options.guidance) == (
            "fast",
            4,
            1.0,
        )
        assert (explicit.options.quality, explicit.options.guidance) == ("fast", 3.0)
    finally:
        await env.close()


def test_seed_and_translation() -> None:
    assert personal({"seed": "fixed", "seed_value": 42}).seed == 42
    assert personal({"seed": "fixed"}).seed is None  # no value stored: random
    assert us.to_personal({"translate": "off"}, WAN.defaults, WAN.limits).translate is False


def test_explicit_options_beat_personal_settings() -> None:
    mine = personal({"quality": "best", "aspect": "1x1"})
    merged = OptionOverrides(steps=10).merged_over(mine)
    assert merged.steps == 10 and merged.width == merged.height


def test_operator_default_changes_reach_users_who_never_changed_them() -> None:
    stored = {"quality": "fast"}  # the user changed quality only
    new_defaults = GenerationDefaults(
        steps=40, frames=49, fps=16, width=480, height=832, guidance=5.0
    )
    mine = us.to_personal(stored, new_defaults, WAN.limits).overrides
    assert mine.frames is None and mine.width is None  # follow the new defaults
    assert us.effective(stored, new_defaults)["aspect"] == "9x16"


aspects = st.sampled_from(us.CHOICES["aspect"])
lengths = st.sampled_from(us.CHOICES["length"])
qualities = st.sampled_from(us.CHOICES["quality"])


@given(
    aspect=aspects,
    length=lengths,
    quality=qualities,
    side_multiple=st.sampled_from([8, 16, 32]),
    frame_multiple=st.sampled_from([1, 4, 8]),
    default_frames_k=st.integers(1, 20),
    steps=st.integers(1, 100),
    fast=st.one_of(st.none(), st.integers(1, 12)),
)
def test_every_setting_combination_resolves_for_the_model(
    aspect, length, quality, side_multiple, frame_multiple, default_frames_k, steps, fast
) -> None:
    limits = ModelLimits(
        max_steps=100,
        max_frames=161,
        frame_multiple=frame_multiple,
        frame_remainder=1 % frame_multiple,
        side_multiple=side_multiple,
        min_side=side_multiple * 4,
        max_pixels=1280 * 720,
    )
    defaults = GenerationDefaults(
        steps=steps,
        frames=frame_multiple * default_frames_k + 1 % frame_multiple,
        fps=16,
        width=side_multiple * 26,
        height=side_multiple * 15,
        guidance=5.0,
    )
    stored = {"aspect": aspect, "length": length, "quality": quality}
    overrides = us.to_personal(stored, defaults, limits, fast_steps=fast, distilled=True).overrides
    options = resolve_options("кот", overrides, defaults, limits)  # raises if anything is invalid
    assert options.frames <= defaults.frames
    assert options.quality == quality
