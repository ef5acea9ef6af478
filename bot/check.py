"""``python -m bot --check``: is this configuration ready to start, without starting it?

One line per check, ``name: ok, …`` or ``name: FAIL, …``; exit 0 when all pass, 1 when one
fails (the configuration itself, exit 2, is checked by ``bot/__main__.py`` before this runs).
Nothing is written and no model weights are loaded, so it is safe next to a running bot:

- **database**: an existing file is opened *read-only* and its pending migrations are listed
  (they are applied at the next start, as always); a missing file is fine when its folder can be
  created — the bot creates it at start.
- **videos**: ``VIDEO_DIR`` exists and is writable, or can be created.
- **video store** (only with ``VIDEO_STORE=s3://…``): the bucket answers ``HeadBucket`` and a
  one-key listing of the prefix with these credentials (``S3_ENDPOINT_URL``); nothing is written.
- **model** / **translator** / **prompt model** (``PROMPT_MODEL``, when set): a local directory
  holding a diffusers ``model_index.json`` (the
  pipeline class is named) or a transformers ``config.json``; otherwise a Hub id
  (``owner/name``), reported as cached or to be downloaded at first start — a failure when
  ``HF_HUB_OFFLINE`` forbids that download.
- **blocked words** / **nsfw model** (when set): ``BLOCKED_WORDS_FILE`` parses (its entry count),
  ``NSFW_MODEL`` is a model directory or Hub id like the models above.
- **token**: ``getMe`` against ``TELEGRAM_API_URL`` (or the cloud API) answers with the bot's
  username. The token itself is never printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite

from bot.observability.health import Check
from bot.storage import db

if TYPE_CHECKING:
    from bot.config import Settings

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
CLOUD_API = "https://api.telegram.org"
TOKEN_TIMEOUT = 15.0


def _creatable(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` if it is a writable directory, else None."""
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK) else None
    return None


async def check_database(path: Path) -> Check:
    if str(path) == ":memory:":
        return Check("database", True, "in memory (nothing kept across restarts)")
    if not await asyncio.to_thread(path.exists):
        if _creatable(path.parent) is None:
            return Check("database", False, f"{path} does not exist and cannot be created")
        count = len(db.discover(db.DEFAULT_MIGRATIONS_DIR))
        return Check("database", True, f"{path} is created at start ({count} migrations)")
    uri = f"file:{await asyncio.to_thread(path.resolve)}?mode=ro"
    try:
        conn = await aiosqlite.connect(uri, uri=True)
    except Exception as error:
        return Check("database", False, f"{path}: {type(error).__name__}: {error}")
    try:
        pending = await db.pending(conn)
        tables = {
            row[0]
            for row in await conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        queued = ""
        if "jobs" in tables:
            rows = await conn.execute_fetchall("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            queued = f", {rows[0][0]} jobs queued"
    except Exception as error:
        return Check("database", False, f"{path}: {type(error).__name__}: {error}")
    finally:
        await conn.close()
    if pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in pending)
        todo = f"{len(pending)} migrations pending ({names}), applied at start"
    else:
        todo = "schema up to date"
    return Check("database", True, f"{path}: {todo}{queued}")


def check_videos(path: Path) -> Check:
    if path.is_dir():
        if os.access(path, os.W_OK | os.X_OK):
            return Check("videos", True, f"{path} is writable")
        return Check("videos", False, f"{path} is not writable")
    if path.exists():
        return Check("videos", False, f"{path} is not a directory")
    if _creatable(path) is None:
        return Check("videos", False, f"{path} does not exist and cannot be created")
    return Check("videos", True, f"{path} is created at start")


def _hub_cached(repo_id: str, filename: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of diffusers and transformers
        return False
    found = try_to_load_from_cache(repo_id, filename)
    return isinstance(found, str)


def check_model(name: str, value: str) -> Check:
    """``value`` is a local directory of a pipeline/model, or a Hub id; no weights are read."""
    path = Path(value).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        if index.is_file():
            try:
                kind = json.loads(index.read_text(encoding="utf-8")).get("_class_name", "?")
            except (OSError, ValueError) as error:
                return Check(name, False, f"{path}/model_index.json is unreadable: {error}")
            return Check(name, True, f"local directory {path} ({kind})")
        if (path / "config.json").is_file():
            return Check(name, True, f"local directory {path}")
        return Check(name, False, f"{path} holds no model_index.json or config.json")
    if path.exists():
        return Check(name, False, f"{path} is not a directory")
    looks_local = value.startswith(("/", "./", "../", "~")) or value.count("/") != 1
    if looks_local or not HUB_ID_RE.match(value):
        return Check(name, False, f"{value}: no such directory, and not a Hub id (owner/name)")
    index = "model_index.json" if name == "model" else "config.json"
    if _hub_cached(value, index):
        return Check(name, True, f"Hub id {value}, in the local cache")
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline:
        return Check(name, False, f"Hub id {value} is not cached and HF_HUB_OFFLINE is set")
    return Check(name, True, f"Hub id {value}, downloaded at first start")


async def check_token(settings: Settings) -> Check:
    from aiogram import Bot
    from aiogram.exceptions import TelegramUnauthorizedError

    from bot.telegram.session import RetryPolicy, make_session

    api = settings.telegram_api_url or CLOUD_API
    bot = Bot(
        token=settings.bot_token.get_secret_value(),
        session=make_session(settings.telegram_api_url, RetryPolicy(max_attempts=1)),
    )
    try:
        me = await asyncio.wait_for(bot.get_me(), TOKEN_TIMEOUT)
    except TelegramUnauthorizedError:
        return Check("token", False, f"{api} refused BOT_TOKEN (401 Unauthorized)")
    except asyncio.TimeoutError:
        return Check("token", False, f"{api} did not answer getMe within {TOKEN_TIMEOUT:g} s")
    except Exception as error:
        return Check("token", False, f"getMe at {api} failed: {type(error).__name__}: {error}")
    finally:
        await bot.session.close()
    return Check("token", True, f"@{me.username} (id {me.id}) at {api}")


async def check_video_store(settings: Settings) -> Check:
    """``VIDEO_STORE``: the bucket is reachable with the configured credentials."""
    from bot.storage.videos import VideoStoreError
    from bot.wiring import video_store

    try:
        detail = await asyncio.wait_for(video_store(settings).check(), TOKEN_TIMEOUT * 4)
    except asyncio.TimeoutError:
        return Check("video store", False, f"{settings.video_store} did not answer in time")
    except VideoStoreError as error:
        return Check("video store", False, str(error))
    return Check("video store", True, detail)


def check_blocked_words(path: Path) -> Check:
    """``BLOCKED_WORDS_FILE`` read and parsed as the bot will (its words are not printed)."""
    from bot.policy import ContentPolicy, PolicyFileError

    try:
        policy = ContentPolicy(path)
    except PolicyFileError as error:
        return Check("blocked words", False, str(error))
    return Check("blocked words", True, f"{path}: {policy.entries} entries")


async def run_checks(settings: Settings) -> list[Check]:
    results = [
        await check_database(settings.database_path),
        check_videos(settings.video_dir),
    ]
    if settings.video_store:
        results.append(await check_video_store(settings))
    if settings.role == "frontend":  # the workers load the models; this machine needs no weights
        results.append(
            Check("model", True, "not loaded here (ROLE=frontend: python -m bot.worker)")
        )
    else:
        results.append(check_model("model", settings.t2v_model))
        if settings.i2v_model:
            results.append(check_model("image model", settings.i2v_model))
        if settings.translator_model.strip().lower() != "none":
            results.append(check_model("translator", settings.translator_model))
        if settings.nsfw_model:
            results.append(check_model("nsfw model", settings.nsfw_model))
    if settings.prompt_model:  # PROMPT_MODEL: a transformers config.json, like the translator
        results.append(check_model("prompt model", settings.prompt_model))
    if settings.blocked_words_file is not None:
        results.append(check_blocked_words(settings.blocked_words_file))
    results.append(await check_token(settings))
    return results


def check(settings: Settings) -> int:
    """Print one line per check; 0 when all pass, 1 otherwise."""
    results = asyncio.run(run_checks(settings))
    for result in results:
        print(result, flush=True)
    return 0 if all(result.ok for result in results) else 1
