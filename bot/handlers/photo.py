"""Photo requests (``I2V_MODEL``): a photo — or an image sent as a file — with a caption in a
private chat, a photo whose caption is ``/generate …`` anywhere, or ``/generate …`` sent as a
reply to a photo. All go through :meth:`bot.services.requests.RequestService.submit_photo`.

The photo is fetched the Bot API way (``getFile``, then the file URL of the configured
``TELEGRAM_API_URL``, aiogram's ``Bot.download_file``; a self-hosted server in ``--local`` mode
answers an absolute path on a shared disk instead, read from there), never before the service
asks for it, and never when Telegram's ``file_size`` already says it is too large.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os

import aiohttp
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.filters import Command, CommandObject
from aiogram.types import Document, Message, PhotoSize, Update

from bot.context import Actor, AppContext
from bot.handlers.generate import origin_of
from bot.services.requests import PhotoFetch, PhotoUnavailable
from bot.texts import photos as photo_texts
from pipeline.image import ImageError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT = 60
"""Seconds a photo download may take (20 MB over a slow link)."""


def picture_of(message: Message | None) -> PhotoSize | Document | None:
    """The largest size of a photo, or a document (the service decides whether it is a
    picture, by its content)."""
    if message is None:
        return None
    if message.photo:
        return message.photo[-1]
    return message.document


def read_local(path: str, max_bytes: int) -> bytes:
    """A file a self-hosted Bot API server in ``--local`` mode stored on a disk the bot shares
    (``getFile`` then answers an absolute path and serves no download)."""
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageError("too_large", f"more than {max_bytes} bytes")
    return data


def fetcher(bot: Bot, picture: PhotoSize | Document) -> PhotoFetch:
    """Downloads ``picture`` once the service asks, refusing by the sizes Telegram states
    before a byte is downloaded."""

    async def fetch(max_bytes: int) -> bytes:
        mime = picture.mime_type if isinstance(picture, Document) else None
        if mime and not mime.lower().startswith("image/"):
            raise ImageError("not_an_image", f"a document of type {mime}")
        if picture.file_size is not None and picture.file_size > max_bytes:
            raise ImageError("too_large", f"{picture.file_size} bytes")
        try:
            file = await bot.get_file(picture.file_id)
            if file.file_size is not None and file.file_size > max_bytes:
                raise ImageError("too_large", f"{file.file_size} bytes")
            if not file.file_path:
                raise PhotoUnavailable("getFile gave no file_path")
            if os.path.isabs(file.file_path):  # a self-hosted server in --local mode
                return await asyncio.to_thread(read_local, file.file_path, max_bytes)
            buffer = io.BytesIO()
            await bot.download_file(file.file_path, buffer, timeout=DOWNLOAD_TIMEOUT)
        except TelegramAPIError as error:
            if "too big" in str(error).lower():  # the cloud API serves files up to 20 MB
                raise ImageError("too_large", str(error)) from error
            raise PhotoUnavailable(f"{type(error).__name__}: {error}") from error
        except (TelegramNetworkError, aiohttp.ClientError, OSError, TimeoutError) as error:
            raise PhotoUnavailable(f"{type(error).__name__}: {error}") from error
        data = buffer.getvalue()
        if len(data) > max_bytes:
            raise ImageError("too_large", f"{len(data)} bytes")
        return data

    return fetch


async def submit_photo(
    message: Message,
    picture: PhotoSize | Document,
    text: str,
    app: AppContext,
    actor: Actor,
    update: Update,
    bot: Bot,
) -> None:
    admitted = await app.requests.submit_photo(
        actor, text, origin_of(message, update), fetcher(bot, picture)
    )
    if admitted.refusal is not None:
        await message.reply(admitted.refusal)


async def on_photo(
    message: Message, app: AppContext, actor: Actor, event_update: Update, bot: Bot
) -> None:
    """A photo or an image file in a private chat: its caption is the request. In an album
    (``media_group_id``) the caption rides on one item: the others are left unanswered, so an
    album of five photos gets one answer, not four "add a caption" hints."""
    if message.media_group_id and not message.caption:
        return
    picture = picture_of(message)
    assert picture is not None  # the filter
    await submit_photo(message, picture, message.caption or "", app, actor, event_update, bot)


async def on_photo_command(
    message: Message,
    command: CommandObject,
    app: AppContext,
    actor: Actor,
    event_update: Update,
    bot: Bot,
) -> None:
    """A photo captioned ``/generate …`` (anywhere, groups included)."""
    picture = picture_of(message)
    assert picture is not None  # the filter
    await submit_photo(message, picture, command.args or "", app, actor, event_update, bot)


async def on_generate_reply(
    message: Message,
    command: CommandObject,
    app: AppContext,
    actor: Actor,
    event_update: Update,
    bot: Bot,
) -> None:
    """``/generate …`` as a reply to a photo: that photo, animated as the command says."""
    picture = picture_of(message.reply_to_message)
    if picture is None:
        await message.reply(photo_texts.reply_needs_photo())
        return
    await submit_photo(message, picture, command.args or "", app, actor, event_update, bot)


def router() -> Router:
    r = Router(name="photo")
    has_picture = F.photo | F.document
    replied_picture = F.reply_to_message.photo | F.reply_to_message.document
    r.message.register(on_photo_command, Command("generate", "gen"), has_picture)
    r.message.register(on_generate_reply, Command("generate", "gen"), replied_picture)
    r.message.register(
        on_photo,
        F.chat.type == "private",
        F.photo | (F.document & (F.caption | F.document.mime_type.startswith("image/"))),
    )
    return r
