"""``python -m bot --help`` and ``--check`` (exit 0 / 1 / 2), and a failed start that must end.

``--check`` runs in-process (``bot.__main__.main(["--check"])`` in a thread, the fake Bot API
answering getMe on this test's event loop); ``--help`` runs as the operator types it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.storage import db
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """``main`` sets up the root logger as the program's; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def fake_model(path: Path) -> Path:
    """A directory shaped like a diffusers pipeline: ``--check`` never reads weights."""
    path.mkdir()
    (path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    return path


@pytest.fixture
def env(tg: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(("BOT_", "T2V_", "METRICS_", "WEBHOOK_", "DATABASE_", "VIDEO_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of a developer's
    monkeypatch.setenv("BOT_TOKEN", tg.token)
    monkeypatch.setenv("TELEGRAM_API_URL", tg.base_url)
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "data" / "bot.sqlite3"))
    monkeypatch.setenv("VIDEO_DIR", str(tmp_path / "data" / "videos"))
    monkeypatch.setenv("T2V_MODEL", str(fake_model(tmp_path / "model")))
    monkeypatch.setenv("TRANSLATOR_MODEL", "none")
    return tmp_path


async def run_check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = await asyncio.to_thread(main, ["--check"])
    out = capsys.readouterr().out
    return code, [line for line in out.splitlines() if line.strip()]


def line(lines: list[str], name: str) -> str:
    (found,) = [text for text in lines if text.startswith(f"{name}: ")]
    return found


def test_help_says_where_settings_come_from_and_lists_entry_points(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--help"],
        cwd=tmp_path,  # no BOT_TOKEN and no .env: help needs neither
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert ".env" in text and "environment" in text and "--check" in text
    for entry in ("t2v-bot", "python -m pipeline", "bot.observability.probe", "bot.worker"):
        assert entry in text, entry


async def test_check_passes_and_lists_pending_migrations_without_applying(
    tg: FakeTelegram, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = env / "data" / "bot.sqlite3"
    older = env / "older-migrations"  # a database made by an older version: the first 2
    older.mkdir()
    for migration in db.discover(db.DEFAULT_MIGRATIONS_DIR)[:2]:
        (older / Path(str(migration.path)).name).write_text(migration.path.read_text())
    conn = await db.connect(path)
    await db.migrate(conn, older)
    await conn.close()

    code, lines = await run_check(capsys)
    assert code == 0, lines
    assert [text.split(":")[0] for text in lines] == [
        "configuration", "database", "videos", "model", "token",
    ]  # fmt: skip
    assert all(": ok, " in text for text in lines), lines
    names = [Path(str(m.path)).stem for m in db.discover(db.DEFAULT_MIGRATIONS_DIR)[2:]]
    pending = f"{len(names)} migrations pending ({', '.join(names)}), applied at start"
    assert pending in line(lines, "database") and "0003_locale_and_state" in pending
    assert "(WanPipeline)" in line(lines, "model")
    assert "@t2v_test_bot" in line(lines, "token")
    assert tg.calls_of("getMe")
    with sqlite3.connect(path) as check:  # nothing was written
        assert check.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == 2
    assert not (env / "data" / "videos").exists()
    assert tg.token not in "\n".join(lines)


@pytest.mark.parametrize("case", ["token_refused", "model_missing", "database_corrupt"])
async def test_check_fails_with_exit_1(
    case: str,
    tg: FakeTelegram,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if case == "token_refused":
        other = "987654321:AAOtherTokenNotKnownToTheServer_xyz"
        monkeypatch.setenv("BOT_TOKEN", other)
        failing, why = "token", "refused BOT_TOKEN (401 Unauthorized)"
    elif case == "model_missing":
        monkeypatch.setenv("T2V_MODEL", str(env / "no-such-model"))
        failing, why = "model", "no such directory"
    else:
        (env / "data").mkdir()
        (env / "data" / "bot.sqlite3").write_bytes(b"this is not a database" * 100)
        failing, why = "database", "DatabaseError"
    code, lines = await run_check(capsys)
    assert code == 1, lines
    assert line(lines, failing).startswith(f"{failing}: FAIL, ")
    assert why in line(lines, failing)
    assert [text for text in lines if ": FAIL, " in text] == [line(lines, failing)]
    assert "AAOtherTokenNotKnown" not in "\n".join(lines)


async def test_check_exits_2_on_an_invalid_configuration(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_QUEUE", "-1")
    monkeypatch.setenv("METRICS_LISTEN", "nowhere")
    code, lines = await run_check(capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("configuration: FAIL, ")
    assert "MAX_QUEUE" in lines[0] and "METRICS_LISTEN" in lines[0]


FAILING_START = """
import asyncio, sys
from pathlib import Path
from types import SimpleNamespace
from bot.__main__ import build_app
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import TOKEN, bot_settings

data = Path(sys.argv[1])
(data / "a-file").write_text("")
tg = SimpleNamespace(token=TOKEN, base_url="http://127.0.0.1:9")
settings = bot_settings(tg, data, video_dir=data / "a-file" / "videos")  # mkdir fails
asyncio.run(build_app(settings, FakeBackend()))
"""


def test_a_start_that_fails_after_opening_the_database_ends(tmp_path: Path) -> None:
    """A failure after the database is open (here: VIDEO_DIR cannot be made) must close it:
    else aiosqlite's non-daemon thread keeps the failed process alive for ever."""
    result = subprocess.run(
        [sys.executable, "-c", FAILING_START, str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,  # a hang fails the test here
    )
    assert result.returncode == 1
    assert "NotADirectoryError" in result.stderr


async def test_check_names_the_prompt_model(
    tg: FakeTelegram, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    llm = env / "llm"
    llm.mkdir()
    (llm / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    monkeypatch.setenv("PROMPT_MODEL", str(llm))
    code, lines = await run_check(capsys)
    assert code == 0 and line(lines, "prompt model") == f"prompt model: ok, local directory {llm}"
    monkeypatch.setenv("PROMPT_MODEL", str(env / "no-llm"))
    code, lines = await run_check(capsys)
    assert code == 1 and line(lines, "prompt model").startswith("prompt model: FAIL, ")


async def test_check_reads_the_content_policy_settings(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    words = env / "blocked.txt"
    words.write_text("# list\nвзрыв\nbomb\n", encoding="utf-8")
    monkeypatch.setenv("BLOCKED_WORDS_FILE", str(words))
    monkeypatch.setenv("NSFW_MODEL", str(env / "no-such-classifier"))
    code, lines = await run_check(capsys)
    assert code == 1
    assert line(lines, "blocked words") == f"blocked words: ok, {words}: 2 entries"
    assert line(lines, "nsfw model").startswith("nsfw model: FAIL, ")
    assert "взрыв" not in "\n".join(lines)
    monkeypatch.setenv("BLOCKED_WORDS_FILE", str(env / "absent.txt"))
    monkeypatch.delenv("NSFW_MODEL")
    code, lines = await run_check(capsys)
    assert code == 1 and "no such file" in line(lines, "blocked words")
