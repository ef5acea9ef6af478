"""Who can do what: admin commands, forged buttons, the token, file paths.

Admin commands and callbacks go through the real wiring (``build_app``: the access and context
middlewares, every router). The token and path checks run the real entry point in a process and
read everything it wrote: its log (DEBUG level), the database, every request it made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.dispatch_env import DispatchEnv, close_env, forward_origin, open_env
from tests.reliability.harness import (
    ADMIN_ID,
    CYRILLIC,
    FIGURES,
    FaultyTelegram,
    ForkServer,
    bot_env,
    db_jobs,
    engine_env,
    wait_all_final,
    wait_ready,
)

VICTIM = 4242
SECRET_PROMPT = "секретный запрос жертвы"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatchEnv]:
    environment = open_env(tmp_path_factory.mktemp("access"), admin_ids=[ADMIN_ID])
    try:
        environment.feed_message(SECRET_PROMPT, VICTIM)
        assert len(environment.jobs_of(VICTIM)) == 1
        yield environment
    finally:
        close_env(environment)


def state(env: DispatchEnv) -> dict[str, Any]:
    """Everything an admin command could change."""

    async def read() -> dict[str, Any]:
        rows = await env.app.conn.execute_fetchall(
            "SELECT id, user_id, status FROM jobs ORDER BY id"
        )
        users = await env.app.conn.execute_fetchall(
            "SELECT user_id, banned, settings FROM users ORDER BY user_id"
        )
        return {
            "jobs": [tuple(r) for r in rows],
            "users": [tuple(u) for u in users if u[0] != 0],
            "paused": await env.app.context.pause.is_paused(),
        }

    snapshot = env.run(read())
    # The presser/sender is recorded in ``users`` on every update: compare only others' rows.
    return snapshot


def others(snapshot: dict[str, Any], user_id: int) -> dict[str, Any]:
    return {
        **snapshot,
        "users": [u for u in snapshot["users"] if u[0] != user_id],
        "jobs": [j for j in snapshot["jobs"] if j[1] != user_id],
    }


NEAR_ADMINS = [
    ADMIN_ID - 1,
    ADMIN_ID + 1,
    ADMIN_ID * 10,
    int(str(ADMIN_ID) + "0"),
    int("1" + str(ADMIN_ID)),
    ADMIN_ID + 2**32,
    ADMIN_ID + 2**31,
]
ADMIN_COMMANDS = [
    "/stats",
    f"/ban {VICTIM}",
    f"/unban {VICTIM}",
    "/pause",
    "/resume",
    "/cancel 1",
    f"/ban@t2v_test_bot {VICTIM}",
    "/STATS",
    "/stats@t2v_test_bot",
]


@pytest.mark.parametrize("user_id", NEAR_ADMINS)
@pytest.mark.parametrize("command", ADMIN_COMMANDS)
def test_non_admin_cannot_run_admin_commands(env: DispatchEnv, user_id: int, command: str) -> None:
    before = others(state(env), user_id)
    since = len(env.tg.calls)
    env.feed_message(command, user_id)
    after = others(state(env), user_id)
    assert after == before, (command, user_id)
    replies = [c for c in env.tg.calls[since:] if c.method in ("sendMessage", "sendPhoto")]
    assert all(c.method == "sendMessage" for c in replies), "a non-admin got a chart"
    for call in replies:
        text = call.params.get("text", "")
        assert CYRILLIC.search(text)
        assert SECRET_PROMPT not in text and str(VICTIM) not in text.replace(command, "")
        assert "📊" not in text


def test_forwarded_admin_command_is_not_admin(env: DispatchEnv) -> None:
    """A user forwards an admin's /ban message: the forwarder is who counts."""
    user = env.next_user()
    for command in (f"/ban {VICTIM}", "/pause", "/stats"):
        before = others(state(env), user)
        env.feed_message(command, user, forward_origin=forward_origin(ADMIN_ID))
        assert others(state(env), user) == before
    for text in env.replies(user):
        assert "📊" not in text and SECRET_PROMPT not in text


def test_admin_in_a_group_chat_id_or_as_sender_chat(env: DispatchEnv) -> None:
    """A group whose chat id equals an admin id, or a message posted on behalf of a chat, is
    not the admin."""
    user = env.next_user()
    before = others(state(env), user)
    env.feed_message(f"/ban {VICTIM}", user, chat_id=-ADMIN_ID, chat_type="supergroup")
    env.feed_message("/pause", user, chat_id=ADMIN_ID, chat_type="private")  # forged chat id
    assert others(state(env), user) == before


def test_non_admin_queue_shows_only_own_jobs(env: DispatchEnv) -> None:
    user = env.next_user()
    env.feed_message("/queue", user)
    for text in env.replies(user):
        assert SECRET_PROMPT not in text and str(VICTIM) not in text


def victim_job_id(env: DispatchEnv) -> int:
    return env.jobs_of(VICTIM)[0].id


TAMPERED = [
    "rep:{victim}",
    "rep:{victim}:1",
    "rep:",
    "rep",
    "rep:abc",
    "rep:-1",
    "rep:0",
    "rep:1e3",
    "rep:99999999999999999999999999",
    "rep:9223372036854775808",
    "rep:{victim} OR 1=1",
    "set:set:aspect:../../etc",
    "set:set:steps:99999",
    "set:set::",
    "set:drop:aspect:1x1",
    "set:set:aspect:1x1:extra:fields",
    "set:" + "A" * 80,
    "rep:" + "9" * 70,
    "x" * 65,
    "я" * 40,
    "",
    "\u200b",
    "null",
    "None",
    '{"job_id": 1}',
]


@pytest.mark.parametrize("template", TAMPERED)
def test_tampered_callback_changes_nothing(env: DispatchEnv, template: str) -> None:
    user = env.next_user()
    data = template.replace("{victim}", str(victim_job_id(env)))
    before = others(state(env), user)
    jobs_before = env.jobs_of(user)
    since = len(env.tg.calls)
    callback = {
        "id": str(user),
        "from": {"id": user, "is_bot": False, "first_name": "Мэллори"},
        "chat_instance": "1",
        "data": data,
        "message": {
            "message_id": 1,
            "date": 1,
            "chat": {"id": user, "type": "private"},
            "from": {"id": 1, "is_bot": True, "first_name": "bot"},
            "text": "…",
        },
    }
    env.run(env.feed({"callback_query": callback}))
    assert others(state(env), user) == before
    jobs_after = env.jobs_of(user)
    assert len(jobs_after) == len(jobs_before), f"{data!r} queued a job"
    answers = [c.params for c in env.tg.calls[since:] if c.method == "answerCallbackQuery"]
    assert answers, f"the spinner of {data!r} was never stopped"
    for answer in answers:
        text = answer.get("text") or ""
        assert not text or CYRILLIC.search(text)
        assert SECRET_PROMPT not in text
    sent = [c for c in env.tg.calls[since:] if c.method == "sendMessage"]
    for call in sent:
        assert SECRET_PROMPT not in call.params.get("text", "")


def test_own_button_still_works(env: DispatchEnv) -> None:
    """The control: a genuine button of one's own job does queue a variant."""
    user = env.next_user()
    env.feed_message("кот на крыше", user)
    job = env.jobs_of(user)[0]
    env.run(env.app.jobs.cancel(job.id))  # free the active slot
    callback = {
        "id": "own",
        "from": {"id": user, "is_bot": False, "first_name": "Иван"},
        "chat_instance": "1",
        "data": f"rep:{job.id}",
        "message": {
            "message_id": 2,
            "date": 1,
            "chat": {"id": user, "type": "private"},
            "from": {"id": 1, "is_bot": True, "first_name": "bot"},
            "text": "…",
        },
    }
    env.run(env.feed({"callback_query": callback}))
    assert len(env.jobs_of(user)) == 2


# ------------------------------------------------------------------ the token and file paths


async def test_token_never_logged_or_shown(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    """DEBUG logging, every fault kind, a failing generation, an unauthorised call: the token
    (or its secret half) appears in no log line, no stored error, no text sent to a user. On
    both engines (the ``database`` fixture)."""
    async with FaultyTelegram() as tg:
        token = tg.token
        proc = fork_server.spawn(
            bot_env(
                tg, tmp_path, log_level="DEBUG", rel_fail_mark="ошибка", **engine_env(database)
            ),
            tmp_path / "bot.log",
        )
        try:
            await wait_ready(tg, proc)
            tg.fail("sendMessage", status=500, times=1)
            tg.fail("sendVideo", drop=True, times=1)
            tg.fail("editMessageText", status=400, description=f"Bad Request: {token}", times=2)
            tg.push_message("кот на луне", user_id=9001)
            tg.push_message("ошибка генерации", user_id=9002)
            tg.push_message("собака", user_id=9003)
            tg.push_message(f"/generate {token}", user_id=9004)  # a user pastes it: their text
            rows = await wait_all_final(database, 4, proc, 40)
        finally:
            await proc.terminate()
    log = proc.output()
    secret = token.split(":", 1)[1]
    assert log, "no log captured"
    assert secret not in log, [line for line in log.splitlines() if secret in line][:3]
    for row in rows:
        assert secret not in (row["error"] or ""), row
    for message in tg.messages.values():
        if message.chat_id == 9004:
            continue  # the user's own text echoed back in their caption is theirs
        assert secret not in (message.text or "") + (message.caption or "")
    FIGURES["token_leak_check"] = {"log_lines": len(log.splitlines()), "leaks": 0}


def check_only_known_files(data: Path) -> None:
    """Nothing was written anywhere but the data folder's known files."""
    written = sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file())
    allowed = {"bot.log", "bot.log.rc", "bot.sqlite3", "bot.sqlite3-wal", "bot.sqlite3-shm"}
    allowed.add("bot.sqlite3.leader")  # the front-end leader lock (bot/storage/leader.py)
    for name in written:
        assert name in allowed or name.startswith("videos/job-"), name
    assert not Path("/tmp/pwned").exists()


async def test_file_paths_never_from_user_text(
    fork_server: ForkServer, tmp_path: Path, sample_mp4: Path, database: Path | str
) -> None:
    prompts = [
        "../../etc/passwd",
        "/generate ../../../tmp/evil --negative ../../x",
        "..\\..\\windows\\system32 кот",
        "$(touch /tmp/pwned) `id` ; rm /",
        "кот\x00.mp4",
        "%2e%2e%2f%2e%2e%2fetc",
    ]
    async with FaultyTelegram() as tg:
        proc = fork_server.spawn(
            bot_env(tg, tmp_path, **engine_env(database)), tmp_path / "bot.log"
        )
        try:
            await wait_ready(tg, proc)
            for index, prompt in enumerate(prompts):
                tg.push_message(prompt, user_id=9100 + index)
            rows = await wait_all_final(database, len(prompts), proc, 30)
        finally:
            await proc.terminate()
    videos = tmp_path / "videos"
    for row in rows:
        assert row["status"] == "delivered", row
        path = Path(row["video_path"])
        assert path == videos / f"job-{row['id']}.mp4"
        meta = json.loads(row["video_meta"])
        assert Path(meta["path"]) == path
    uploaded = sorted(upload.filename for upload in tg.video_uploads())
    assert uploaded == sorted(f"video-{row['number']}.mp4" for row in rows)
    check_only_known_files(tmp_path)
    assert len(db_jobs(database)) == len(prompts)
