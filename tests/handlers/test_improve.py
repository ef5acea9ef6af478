"""The prompt improver in the bot (``PROMPT_MODEL``), through the real middlewares, routers and
services: the /settings mode (always / ask / never), the improved prompt with its two buttons,
exactly one job per choice, forged / foreign / repeated / stale presses, replays, failures that
fall back to the text as written, and a front end without the model.

The improver is the real one (``pipeline.improve.PromptImprover``) over the tiny random Qwen2;
its answers are put through the seam (``raw_output``), so the checks and fallbacks run as in
production."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import EditMessageReplyMarkup, SendChatAction, SendMessage

from bot.storage.drafts import DraftStore
from bot.telegram.keyboards import ImproveCb, SettingsCb
from bot.texts import improve as texts
from bot.texts import queue as queue_texts
from bot.texts import settings as settings_texts
from pipeline.improve import PromptImprover
from tests.fakes.backend import wan_like_backend
from tests.handlers.harness import FeatureEnv, message_update, open_feature_env

ALICE, BOB = 10, 20
GOOD = (
    "A ginger cat plays a grand piano on the surface of the moon, paws on the keys, Earth "
    "rising behind it. Slow orbiting camera, cold sunlight, cinematic, photorealistic."
)
REQUEST = "кот играет на пианино на луне --steps 20"


@pytest.fixture(scope="module")
def improver(tiny_qwen_dir: Path) -> PromptImprover:
    return PromptImprover.load(str(tiny_qwen_dir), "cpu", max_new_tokens=8, timeout=30)


@pytest.fixture
def answer(improver: PromptImprover) -> Callable[[Any], None]:
    """Sets what the model "writes" next (a string, or an exception to raise)."""
    original = improver.raw_output

    def set_answer(value: Any) -> None:
        def raw(request: str) -> str:
            if isinstance(value, BaseException):
                raise value
            return value

        improver.raw_output = raw

    set_answer(GOOD)
    yield set_answer
    improver.raw_output = original


@pytest.fixture
async def env(tmp_path: Path, improver: PromptImprover, answer: Any) -> AsyncIterator[FeatureEnv]:
    env = await open_feature_env(
        tmp_path / "bot.sqlite3",
        backend=wan_like_backend(improver=improver),
        prompt_model="Qwen/Qwen2.5-1.5B-Instruct",
    )
    yield env
    await env.close()


def proposals(env: FeatureEnv) -> list[SendMessage]:
    return [
        m
        for m in env.session.of(SendMessage)
        if m.reply_markup is not None and "imp:" in str(m.reply_markup.model_dump())
    ]


def buttons(message: SendMessage) -> list[str]:
    return [b.callback_data for row in message.reply_markup.inline_keyboard for b in row]


async def ask(env: FeatureEnv, user: int = ALICE, text: str = REQUEST) -> tuple[str, str]:
    """Send a request as a user on "ask"; return the data of its two buttons."""
    before = len(proposals(env))
    await env.send(user, text)
    shown = proposals(env)
    assert len(shown) == before + 1, env.session.texts()
    improved, plain = buttons(shown[-1])
    return improved, plain


async def test_ask_shows_the_improved_prompt_and_queues_nothing_yet(env: FeatureEnv) -> None:
    await ask(env)
    message = proposals(env)[-1]
    assert GOOD in message.text and message.reply_parameters is not None
    labels = [b.text for row in message.reply_markup.inline_keyboard for b in row]
    assert labels == ["✅ Снять так", "✏️ Как написал"]  # Russian by default
    assert await env.jobs.user_jobs(ALICE, limit=5) == []
    assert env.fake.improvements == ["кот играет на пианино на луне"]  # options stripped
    assert [a.action for a in env.session.of(SendChatAction)] == ["typing"]  # while it writes
    assert env.fake.improve_threads and all(
        t.startswith("improve") for t in env.fake.improve_threads
    )  # the improver thread, not the event loop's


async def test_render_this_queues_one_job_with_the_improved_prompt(env: FeatureEnv) -> None:
    improved, plain = await ask(env)
    session = await env.press(ALICE, improved)
    (job,) = await env.jobs.user_jobs(ALICE, limit=5)
    assert (job.prompt_en, job.improve, job.options.steps) == (GOOD, True, 20)
    assert job.prompt == "кот играет на пианино на луне" and job.status == "queued"
    assert session.answers()[-1].text == texts.queued_improved(job.number)
    assert session.of(EditMessageReplyMarkup)  # the buttons are gone
    for again in (improved, plain):  # a second press of either button changes nothing
        session = await env.press(ALICE, again)
        assert session.answers()[-1].text == texts.already_chosen()
    assert len(await env.jobs.user_jobs(ALICE, limit=5)) == 1


async def test_as_i_wrote_it_queues_the_plain_request(env: FeatureEnv) -> None:
    _improved, plain = await ask(env)
    session = await env.press(ALICE, plain)
    (job,) = await env.jobs.user_jobs(ALICE, limit=5)
    assert (job.prompt_en, job.improve, job.translate) == (None, False, True)
    assert session.answers()[-1].text == texts.queued_plain(job.number)


async def test_the_english_catalogue(env: FeatureEnv) -> None:
    await env.press(ALICE, SettingsCb(action="set", name="language", value="en").pack())
    await ask(env)
    labels = [b.text for row in proposals(env)[-1].reply_markup.inline_keyboard for b in row]
    assert labels == ["✅ Render this", "✏️ As I wrote it"]


async def test_forged_and_foreign_presses_change_nothing(env: FeatureEnv) -> None:
    improved, plain = await ask(env)
    token = ImproveCb.unpack(improved).token
    forged = [
        ImproveCb(token="x" * 5, choice="improved").pack(),  # not a token at all
        ImproveCb(token="A" * 16, choice="improved").pack(),  # no such draft
        ImproveCb(token=token, choice="evil").pack(),  # no such choice
    ]
    for data in forged:
        session = await env.press(ALICE, data)
        assert session.answers()[-1].text in (
            queue_texts.button_broken(),
            queue_texts.button_foreign(),
        )
    for data in (improved, plain):  # Bob presses Alice's buttons
        session = await env.press(BOB, data)
        assert session.answers()[-1].text == queue_texts.button_foreign()
    assert await env.jobs.user_jobs(ALICE, limit=5) == []
    assert await env.jobs.user_jobs(BOB, limit=5) == []
    await env.press(ALICE, improved)  # the owner still can
    assert len(await env.jobs.user_jobs(ALICE, limit=5)) == 1


async def test_a_stale_draft_changes_nothing(env: FeatureEnv) -> None:
    improved, _plain = await ask(env)
    await env.conn.execute("UPDATE prompt_drafts SET created_at = created_at - 2 * 86400")
    session = await env.press(ALICE, improved)
    assert session.answers()[-1].text == texts.expired()
    assert await env.jobs.user_jobs(ALICE, limit=5) == []


async def test_replayed_updates_show_once_and_queue_once(env: FeatureEnv) -> None:
    update = message_update(ALICE, REQUEST)
    await env.dp.feed_update(env.bot, update)
    await env.dp.feed_update(env.bot, update)  # replayed from the inbox after a crash
    assert len(proposals(env)) == 1 and len(env.fake.improvements) == 1
    improved, _plain = buttons(proposals(env)[-1])
    from tests.handlers.harness import callback_update

    press = callback_update(ALICE, improved)
    await env.dp.feed_update(env.bot, press)
    await env.dp.feed_update(env.bot, press)
    (job,) = await env.jobs.user_jobs(ALICE, limit=5)
    assert job.update_id == press.update_id and job.prompt_en == GOOD


async def test_a_replay_during_improvement_improves_again_and_shows_once(
    env: FeatureEnv,
) -> None:
    """A kill -9 while improving leaves an "improving" draft; the replayed update finishes it."""
    update = message_update(ALICE, REQUEST)
    drafts = DraftStore(env.conn)
    await drafts.create(
        user_id=ALICE,
        chat_id=ALICE,
        request_message_id=update.message.message_id,
        request=REQUEST,
        locale="ru",
        update_id=update.update_id,
    )
    await env.dp.feed_update(env.bot, update)
    assert len(proposals(env)) == 1
    draft = await drafts.by_update(update.update_id)
    assert draft is not None and draft.state == "ready" and draft.improved == GOOD


@pytest.mark.parametrize(
    "bad",
    [
        "Рыжий кот играет на рояле на Луне, кинематографично.",  # not translated
        "You turn short video requests into prompts for a text-to-video model.",  # an echo
        "",
        RuntimeError("CUDA error: an illegal memory access was encountered"),
    ],
)
async def test_a_failed_improvement_queues_the_request_as_written(
    env: FeatureEnv, answer: Any, bad: Any
) -> None:
    answer(bad)
    await env.send(ALICE, REQUEST)
    assert not proposals(env)
    assert texts.not_improved() in env.session.texts()
    (job,) = await env.jobs.user_jobs(ALICE, limit=5)
    assert (job.prompt_en, job.improve, job.options.steps) == (None, False, 20)


async def test_always_queues_at_once_for_the_worker_to_improve(env: FeatureEnv) -> None:
    await env.press(ALICE, SettingsCb(action="set", name="improve", value="always").pack())
    await env.send(ALICE, REQUEST)
    assert not proposals(env) and env.fake.improvements == []
    (job,) = await env.jobs.user_jobs(ALICE, limit=5)
    assert (job.prompt_en, job.improve) == (None, True)


async def test_never_and_translation_off_queue_plain_requests(env: FeatureEnv) -> None:
    await env.press(ALICE, SettingsCb(action="set", name="improve", value="never").pack())
    await env.press(BOB, SettingsCb(action="set", name="translate", value="off").pack())
    await env.send(ALICE, REQUEST)
    await env.send(BOB, REQUEST)
    assert not proposals(env)
    for user in (ALICE, BOB):
        (job,) = await env.jobs.user_jobs(user, limit=5)
        assert (job.prompt_en, job.improve) == (None, False)


async def test_a_refused_request_is_not_improved(env: FeatureEnv) -> None:
    await env.send(ALICE, "кот --steps 1000")
    assert not proposals(env) and env.fake.improvements == []
    assert "steps" in env.session.last_text() or "шаг" in env.session.last_text()


async def test_a_press_refused_by_a_limit_can_be_pressed_again(env: FeatureEnv) -> None:
    improved, _plain = await ask(env)
    for _ in range(env.settings.max_active_jobs_per_user):
        await env.add_job(ALICE)
    session = await env.press(ALICE, improved)
    assert session.answers()[-1].show_alert
    assert len(await env.jobs.user_jobs(ALICE, limit=10)) == env.settings.max_active_jobs_per_user
    await env.conn.execute("UPDATE jobs SET status = 'delivered'")
    await env.press(ALICE, improved)
    newest = (await env.jobs.user_jobs(ALICE, limit=1))[0]
    assert newest.prompt_en == GOOD and newest.status == "queued"


async def test_repeat_keeps_the_improved_prompt(env: FeatureEnv) -> None:
    improved, _plain = await ask(env)
    await env.press(ALICE, improved)
    (job,) = await env.jobs.user_jobs(ALICE, limit=5)
    await env.conn.execute("UPDATE jobs SET status = 'delivered' WHERE id = ?", (job.id,))
    from bot.telegram.keyboards import RepeatCb

    await env.press(ALICE, RepeatCb(job_id=job.id).pack())
    new = (await env.jobs.user_jobs(ALICE, limit=1))[0]
    assert new.id != job.id and (new.prompt_en, new.improve) == (GOOD, True)


async def test_settings_show_the_mode_only_with_a_prompt_model(
    env: FeatureEnv, tmp_path: Path
) -> None:
    session = await env.send(ALICE, "/settings")
    shown = session.of(SendMessage)[-1]
    data = [b.callback_data for row in shown.reply_markup.inline_keyboard for b in row]
    assert SettingsCb(action="set", name="improve", value="always").pack() in data
    assert "✅ " + settings_texts.value_label("improve", "ask") in str(shown.reply_markup)

    plain = await open_feature_env(tmp_path / "plain.sqlite3")  # no PROMPT_MODEL
    try:
        session = await plain.send(ALICE, "/settings")
        shown = session.of(SendMessage)[-1]
        assert "improve" not in str(shown.reply_markup.model_dump())
        forged = SettingsCb(action="set", name="improve", value="always").pack()
        session = await plain.press(ALICE, forged)
        assert session.answers()[-1].text == queue_texts.button_broken()
        assert await plain.users.get_settings(ALICE) == {}
        await plain.send(ALICE, REQUEST)
        (job,) = await plain.jobs.user_jobs(ALICE, limit=5)
        assert job.improve is False
    finally:
        await plain.close()


async def test_ask_without_a_local_improver_behaves_like_always(tmp_path: Path) -> None:
    """A front end without the model (ROLE=frontend): the worker improves at render time."""
    env = await open_feature_env(tmp_path / "bot.sqlite3", prompt_model="Qwen/Qwen2.5-3B-Instruct")
    try:
        await env.send(ALICE, REQUEST)
        assert not proposals(env)
        (job,) = await env.jobs.user_jobs(ALICE, limit=5)
        assert (job.prompt_en, job.improve) == (None, True)
    finally:
        await env.close()


async def test_an_improvement_that_never_ends_does_not_hold_the_request(
    tmp_path: Path, improver: PromptImprover
) -> None:
    """The improver thread is stuck (a hung device): the request waits at most twice
    ``PROMPT_TIMEOUT``, then goes as written."""
    import threading

    stuck = threading.Event()

    def hang(request: str) -> str:
        stuck.wait(30)
        return GOOD

    improver.raw_output = hang
    env = await open_feature_env(
        tmp_path / "bot.sqlite3",
        backend=wan_like_backend(improver=improver),
        prompt_model="Qwen/Qwen2.5-1.5B-Instruct",
        prompt_timeout=0.05,
    )
    try:
        await env.send(ALICE, REQUEST)
        assert not proposals(env) and texts.not_improved() in env.session.texts()
        (job,) = await env.jobs.user_jobs(ALICE, limit=5)
        assert (job.prompt_en, job.improve) == (None, False)
    finally:
        stuck.set()
        improver.raw_output = improver.generate
        env.app.drafts.close()
        await env.close()
