"""A fake Telegram Bot API server on 127.0.0.1, for tests and benchmarks.

It speaks the wire protocol aiogram uses (``POST /bot<token>/<method>``, form fields with JSON
encoded objects, files as multipart parts referenced by ``attach://<key>``) and answers
``{"ok": true, "result": …}`` with realistic objects, so the real bot runs against it unchanged
via ``TELEGRAM_API_URL``. Every call is recorded; faults can be injected per method and chat.

    async with FakeTelegram() as tg:
        settings = Settings(bot_token=tg.token, telegram_api_url=tg.base_url, …)
        tg.push_message("кот на луне", user_id=1001)
        await tg.wait_for(lambda: tg.videos())

Methods: getMe, getUpdates (long poll with offset/timeout), sendMessage, editMessageText,
editMessageReplyMarkup, editMessageCaption, editMessageMedia, deleteMessage, sendVideo,
sendPhoto, sendDocument, sendChatAction, answerCallbackQuery, setMyCommands, deleteMyCommands,
setWebhook, deleteWebhook, getWebhookInfo, getFile, close, logOut; and file downloads
(``GET /file/bot<token>/<file_path>``, as aiogram's ``Bot.download_file`` fetches them) of the
files users sent (:meth:`FakeTelegram.push_photo`, :meth:`FakeTelegram.push_document`, or
:meth:`FakeTelegram.add_file`).

Media messages as Telegram keeps them: a message sent with a photo or a video has ``media``
(``SentMessage.media``/``.upload``) and a caption (≤ 1024 characters); ``editMessageMedia``
(multipart, the new file referenced by ``attach://`` in the JSON ``media`` field, a thumbnail
likewise) replaces the picture or the video of such a message, with its caption and keyboard;
``editMessageCaption`` replaces the caption. As Telegram answers: 400 "message to edit not found"
(deleted or unknown), 400 "there is no media in the message to edit" / "there is no caption in
the message to edit" (a text message), 400 "message is not modified" (same caption and keyboard).

Webhooks, as Telegram runs them: after ``setWebhook`` (url, secret_token, allowed_updates)
``getUpdates`` answers 409 Conflict, and a delivery task POSTs each pushed update to the URL as
JSON with the ``X-Telegram-Bot-Api-Secret-Token`` header, oldest first, one at a time, retrying
the same update until the bot answers 200 (then it is confirmed: ``confirmed_offset`` moves past
it, as an offset does in polling). ``deleteWebhook`` ends the deliveries; undelivered updates are
then returned by ``getUpdates`` (or dropped with ``drop_pending_updates``). Both ways honour the
last ``allowed_updates`` the bot sent: an update of another type is never delivered.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TOKEN = "123456789:AAFakeTokenForTests_abcdefghijKLMNOP"
BOT_ID = 123456789
BOT_USERNAME = "t2v_test_bot"

JSON_FIELDS = {
    "reply_parameters",
    "reply_markup",
    "commands",
    "scope",
    "allowed_updates",
    "link_preview_options",
    "entities",
    "caption_entities",
    "media",
}
INT_FIELDS = {
    "chat_id",
    "message_id",
    "width",
    "height",
    "duration",
    "offset",
    "timeout",
    "limit",
    "user_id",
    "max_connections",
}
BOOL_FIELDS = {"supports_streaming", "drop_pending_updates", "show_alert", "disable_notification"}
UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "inline_query",
    "my_chat_member",
    "chat_member",
)


@dataclass
class Upload:
    """One file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Call:
    """One request the bot made, and what the fake answered."""

    method: str
    params: dict[str, Any]
    files: dict[str, Upload]
    time: float
    status: int = 200
    result: Any = None
    connected: Callable[[], bool] = lambda: True
    """Whether the caller's connection is still open (a killed bot's long poll is not)."""

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | None:
        return self.params.get("chat_id")

    def file(self, name: str) -> Upload | None:
        """The upload a field points at (``video=attach://key``)."""
        value = self.params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.files.get(value.removeprefix("attach://"))
        return self.files.get(name)


@dataclass
class Fault:
    """An injected failure: the next ``times`` matching calls get it (None = forever)."""

    method: str
    status: int = 429
    description: str | None = None
    retry_after: int | None = None
    times: int | None = 1
    chat_id: int | None = None
    delay: float = 0.0
    drop: bool = False

    def matches(self, method: str, chat_id: int | None) -> bool:
        return (self.method in ("*", method)) and (self.chat_id is None or self.chat_id == chat_id)


@dataclass
class WebhookConfig:
    """What the bot gave ``setWebhook``."""

    url: str
    secret_token: str | None = None
    max_connections: int = 40


@dataclass
class WebhookDelivery:
    """One POST of an update to the webhook, and how the bot answered (0 = no answer)."""

    update_id: int
    status: int
    secret_sent: bool
    time: float = field(default_factory=time.monotonic)


@dataclass
class SentMessage:
    """A message the bot sent, as it stands now (edits applied)."""

    chat_id: int
    message_id: int
    method: str
    text: str | None
    caption: str | None = None
    reply_to: int | None = None
    reply_markup: Any = None
    deleted: bool = False
    edits: list[tuple[float, str]] = field(default_factory=list)
    sent_at: float = field(default_factory=time.monotonic)
    media: str | None = None
    """``photo`` / ``video`` / ``document`` for a media message (an edit may change it)."""
    upload: Upload | None = None
    """The file the message shows now (the last upload that set its media)."""
    media_object: dict[str, Any] | None = None
    """The Bot API object of its media (``video``: {...}, ``photo``: [...])."""
    media_edits: list[tuple[float, str]] = field(default_factory=list)
    """(time, kind) of every ``editMessageMedia`` that changed it."""


class FakeTelegram:
    """The server; use as an async context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, token: str = TOKEN, *, username: str = BOT_USERNAME) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.blocked: set[int] = set()
        self.messages: dict[tuple[int, int], SentMessage] = {}
        self.user_messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._file_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.confirmed_offset = 0
        self.hooks: dict[str, Callable[[Call], Awaitable[None] | None]] = {}
        """``method`` → called with each call before it is answered (e.g. to look at the DB)."""
        self.last_update_id: int | None = None
        """The id of the update pushed last."""
        self.handed_out: dict[int, float] = {}
        """update id → ``time.monotonic()`` when a ``getUpdates`` answer (or a webhook POST)
        first carried it."""
        self.webhook: WebhookConfig | None = None
        """The webhook set by ``setWebhook`` (None: long polling)."""
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.webhook_retry_delay = 0.1
        """Seconds before an update the bot did not answer 200 is POSTed again."""
        self.allowed_updates: list[str] | None = None
        """The update types the bot asked for last (``getUpdates``/``setWebhook``); None = all."""
        self.last_webhook_error: str | None = None
        self.on_webhook_answer: Callable[[WebhookDelivery], Any] | None = None
        """Called with each webhook POST as soon as the bot's answer arrived."""
        self._webhook_wakeup = asyncio.Event()
        self._delivery: asyncio.Task[None] | None = None
        self.per_second_limit: int | None = None
        """As Telegram: more calls than this within one second (``getUpdates`` aside) get
        429 with ``retry_after`` 1. None = unlimited."""
        self._recent: collections.deque[float] = collections.deque()
        self._polls: dict[int, Call] = {}
        """Long polls in progress (``id(call)`` → call)."""
        self._superseded: set[int] = set()
        self.poll_conflicts: list[Call] = []
        """``getUpdates`` calls answered 409 because another one (from a connection still open)
        came meanwhile: what Telegram does when two processes poll one token."""
        self.files: dict[str, bytes] = {}
        """file_id → the content of a file a user sent (served by ``getFile`` + download)."""
        self.downloads: list[str] = []
        """The ``file_path`` of every download the bot made, in order."""
        self.download_hook: Callable[[str], Awaitable[None] | None] | None = None
        """Called with each download's path before it is answered."""
        self.local_files_dir: Any = None
        """A directory (``pathlib.Path``): ``getFile`` answers as a self-hosted Bot API server in
        ``--local`` mode does — the file is written there and its absolute path returned."""

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        assert self.port is not None, "start() the server first"
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=4 * 1024**3)
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self._new_update.set()
        await self._stop_delivery()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ updates from "users"

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    @staticmethod
    def _chat(chat_id: int, chat_type: str = "private") -> dict[str, Any]:
        if chat_type == "private":
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        return {"id": chat_id, "type": chat_type, "title": f"Group {chat_id}"}

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        self.last_update_id = update["update_id"]
        self._updates.append(update)
        self._new_update.set()
        self._webhook_wakeup.set()
        return update

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates Telegram still holds for the bot (not confirmed yet), oldest first."""
        return list(self._updates)

    def confirm(self, update_id: int) -> dict[str, Any]:
        """Forget a pending update as a confirmation does (the bot confirmed it, then died)."""
        update = next(u for u in self._updates if u["update_id"] == update_id)
        self._updates.remove(update)
        self.confirmed_offset = max(self.confirmed_offset, update_id + 1)
        return update

    def resend(self, update: dict[str, Any]) -> None:
        """Send an update again with its own id (as Telegram does when a confirmation was lost)."""
        self._updates = sorted([*self._updates, update], key=lambda u: u["update_id"])
        self._new_update.set()
        self._webhook_wakeup.set()

    async def post_webhook(self, update: dict[str, Any], *, secret: Any = ...) -> int:
        """POST ``update`` to the webhook now, outside the delivery order (a forged or replayed
        call); ``secret``: the header's value, None = no header, default = the registered one.
        Returns the HTTP status (0 = no answer)."""
        assert self.webhook is not None, "no webhook is set"
        token = self.webhook.secret_token if secret is ... else secret
        async with aiohttp.ClientSession() as client:
            return await self._post(client, self.webhook.url, update, token)

    def push_message(
        self,
        text: str | None = None,
        *,
        user_id: int = 1001,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Иван",
        username: str | None = None,
        language_code: str | None = "ru",
        **extra: Any,
    ) -> dict[str, Any]:
        """A user writes to the bot; returns the message (its ``message_id`` is the request id).
        ``extra`` adds fields, e.g. ``photo=[…]`` or ``sticker={…}`` for non-text messages."""
        chat_id = chat_id if chat_id is not None else user_id
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "date": int(time.time()),
            "chat": self._chat(chat_id, chat_type),
            "from": {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name,
                "username": username,
                "language_code": language_code,
            },
        }
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        message.update(extra)
        self.user_messages[(chat_id, message["message_id"])] = message
        self.push_update({"message": message})
        return message

    def add_file(self, data: bytes) -> dict[str, Any]:
        """Keep ``data`` as a file a user sent; returns its ``file_id``/``file_unique_id``/
        ``file_size`` (what Telegram puts in a PhotoSize or a Document)."""
        number = next(self._file_ids)
        file_id = f"user-file-{number}"
        self.files[file_id] = data
        return {"file_id": file_id, "file_unique_id": f"uf{number}", "file_size": len(data)}

    @staticmethod
    def _caption(caption: str | None) -> dict[str, Any]:
        if not caption:
            return {}
        extra: dict[str, Any] = {"caption": caption}
        if caption.startswith("/"):
            command = caption.split()[0]
            extra["caption_entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(command)}
            ]
        return extra

    def push_photo(
        self,
        *,
        user_id: int = 1001,
        caption: str | None = None,
        data: bytes | None = None,
        width: int = 90,
        height: int = 90,
        file_size: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A user sends a photo (``data``: its content, served by ``getFile`` and the download
        route; ``file_size`` overrides the size Telegram reports). Telegram sends a few sizes;
        the largest is last."""
        if data is None:
            photo = [{"file_id": "ph1", "file_unique_id": "u1", "width": width, "height": height}]
        else:
            stored = self.add_file(data)
            if file_size is not None:
                stored["file_size"] = file_size
            thumb = {"file_id": "thumb-" + stored["file_id"], "file_unique_id": "t", "width": 9,
                     "height": 9}  # fmt: skip
            photo = [thumb, {**stored, "width": width, "height": height}]
        return self.push_message(
            None, user_id=user_id, photo=photo, **self._caption(caption), **extra
        )

    def push_document(
        self,
        data: bytes,
        *,
        user_id: int = 1001,
        caption: str | None = None,
        mime_type: str | None = "image/jpeg",
        file_name: str = "photo.jpg",
        file_size: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A user sends a file (an image "without compression", or any document)."""
        stored = self.add_file(data)
        if file_size is not None:
            stored["file_size"] = file_size
        document = {**stored, "file_name": file_name}
        if mime_type:
            document["mime_type"] = mime_type
        return self.push_message(
            None, user_id=user_id, document=document, **self._caption(caption), **extra
        )

    def push_sticker(self, *, user_id: int = 1001) -> dict[str, Any]:
        sticker = {
            "file_id": "st1",
            "file_unique_id": "su1",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        return self.push_message(None, user_id=user_id, sticker=sticker)

    def push_voice(self, *, user_id: int = 1001) -> dict[str, Any]:
        voice = {"file_id": "vo1", "file_unique_id": "vu1", "duration": 2}
        return self.push_message(None, user_id=user_id, voice=voice)

    def push_callback(
        self,
        data: str,
        *,
        user_id: int = 1001,
        message_id: int,
        chat_id: int | None = None,
        language_code: str | None = "ru",
    ) -> str:
        """A user presses an inline button under the bot's message ``message_id``."""
        chat_id = chat_id if chat_id is not None else user_id
        sent = self.messages.get((chat_id, message_id))
        message = self._message_object(sent) if sent else {
            "message_id": message_id, "date": int(time.time()), "chat": self._chat(chat_id),
            "from": self._bot_user(), "text": "…",
        }  # fmt: skip
        callback_id = str(next(self._update_ids) * 7919)
        self.push_update(
            {
                "callback_query": {
                    "id": callback_id,
                    "from": {
                        "id": user_id,
                        "is_bot": False,
                        "first_name": "Иван",
                        "language_code": language_code,
                    },
                    "chat_instance": str(chat_id),
                    "message": message,
                    "data": data,
                }
            }
        )
        return callback_id

    # ------------------------------------------------------------ faults

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = None,
        description: str | None = None,
        times: int | None = 1,
        chat_id: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
    ) -> Fault:
        """Make the next ``times`` calls of ``method`` ("*" = any) fail with ``status``; 429 gets
        ``retry_after`` 1 unless given; ``drop`` closes the connection instead of answering."""
        if status == 429 and retry_after is None:
            retry_after = 1
        fault = Fault(method, status, description, retry_after, times, chat_id, delay, drop)
        self.faults.append(fault)
        return fault

    def slow(self, method: str, seconds: float, *, times: int | None = None) -> Fault:
        """Answer ``method`` only after ``seconds`` (a slow upload), successfully."""
        fault = Fault(method, status=200, times=times, delay=seconds)
        self.faults.append(fault)
        return fault

    def block(self, chat_id: int) -> None:
        """The user of ``chat_id`` blocked the bot: every send to it gets 403."""
        self.blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        self.blocked.discard(chat_id)

    # ------------------------------------------------------------ inspection

    def calls_of(
        self, method: str, chat_id: int | None = None, *, ok: bool | None = None
    ) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method
            and (chat_id is None or c.chat_id == chat_id)
            and (ok is None or c.ok == ok)
        ]

    def videos(self, chat_id: int | None = None) -> list[Call]:
        """Successful sendVideo calls (what users actually received)."""
        return self.calls_of("sendVideo", chat_id, ok=True)

    def video_uploads(self, chat_id: int | None = None) -> list[Upload]:
        """The video files the bot got through: by sendVideo, or edited into a message."""
        uploads = [c.file("video") for c in self.videos(chat_id)]
        for call in self.calls_of("editMessageMedia", chat_id, ok=True):
            if call.params["media"].get("type") == "video":
                uploads.append(self.media_upload(call))
        return [upload for upload in uploads if upload is not None]

    def texts_to(self, chat_id: int) -> list[str]:
        """Current texts of the bot's text messages in a chat, oldest first (deleted ones too)."""
        return [
            m.text or ""
            for (cid, _), m in sorted(self.messages.items())
            if cid == chat_id and m.text is not None
        ]

    def sent(self, chat_id: int) -> list[SentMessage]:
        return [m for (cid, _), m in sorted(self.messages.items()) if cid == chat_id]

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02
    ) -> Any:
        """Poll ``predicate`` until it is truthy (returns its value) or fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(interval)

    # ------------------------------------------------------------ HTTP

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Видео", "username": self.username}

    def _message_object(self, sent: SentMessage) -> dict[str, Any]:
        chat_type = "private" if sent.chat_id > 0 else "group"
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": self._chat(sent.chat_id, chat_type),
            "from": self._bot_user(),
        }
        if sent.text is not None:
            message["text"] = sent.text
        if sent.caption is not None:
            message["caption"] = sent.caption
        if sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        if sent.media is not None and sent.media_object is not None:
            message[sent.media] = sent.media_object
        if sent.reply_to is not None:
            original = self.user_messages.get((sent.chat_id, sent.reply_to))
            if original is not None:
                message["reply_to_message"] = original
        return message

    @staticmethod
    def _decode(name: str, value: str) -> Any:
        if name in JSON_FIELDS:
            try:
                return json.loads(value)
            except ValueError:
                return value
        if name in INT_FIELDS:
            try:
                return int(value)
            except ValueError:
                return value
        if name in BOOL_FIELDS:
            return value.lower() == "true"
        return value

    async def _read(self, request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
        params: dict[str, Any] = {}
        files: dict[str, Upload] = {}
        if request.content_type == "application/json":
            body = await request.json()
            return dict(body), files
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                files[name] = Upload(name, value.filename, value.content_type, value.file.read())
            else:
                params[name] = self._decode(name, str(value))
        params.update({k: v for k, v in request.query.items() if k not in params})
        return params, files

    @staticmethod
    def _error(status: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return body

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response(self._error(401, "Unauthorized"), status=401)
        params, files = await self._read(request)
        call = Call(method, params, files, time.monotonic())
        call.connected = lambda: (
            request.transport is not None and not request.transport.is_closing()
        )
        self.calls.append(call)
        chat_id = call.chat_id

        if self.per_second_limit is not None and method != "getUpdates":
            now = time.monotonic()
            while self._recent and now - self._recent[0] > 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.per_second_limit:
                call.status = 429
                body = self._error(429, "Too Many Requests: retry after 1", 1)
                return web.json_response(body, status=429)
            self._recent.append(now)

        for fault in list(self.faults):
            if not fault.matches(method, chat_id):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                call.status = 0
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable()
            if fault.status != 200:
                description = fault.description or {
                    429: f"Too Many Requests: retry after {fault.retry_after}",
                    403: "Forbidden: bot was blocked by the user",
                    400: "Bad Request: message is not modified",
                    500: "Internal Server Error",
                    502: "Bad Gateway",
                }.get(fault.status, "Error")
                call.status = fault.status
                body = self._error(fault.status, description, fault.retry_after)
                return web.json_response(body, status=fault.status)
            break

        if chat_id is not None and chat_id in self.blocked and method != "getChat":
            call.status = 403
            return web.json_response(
                self._error(403, "Forbidden: bot was blocked by the user"), status=403
            )

        hook = self.hooks.get(method)
        if hook is not None:
            awaitable = hook(call)
            if awaitable is not None:
                await awaitable

        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            call.status = 404
            return web.json_response(self._error(404, "Not Found: method not found"), status=404)
        try:
            result = await handler(call)
        except ApiError as error:
            call.status = error.status
            return web.json_response(
                self._error(error.status, error.description), status=error.status
            )
        call.result = result
        return web.json_response({"ok": True, "result": result})

    # ------------------------------------------------------------ methods

    async def _m_getMe(self, call: Call) -> Any:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _wanted(self, update: dict[str, Any]) -> bool:
        if not self.allowed_updates:  # Telegram: empty or never given = every type but a few
            return True
        kind = next((k for k in update if k in UPDATE_TYPES), None)
        return kind is None or kind in self.allowed_updates

    def _remember_allowed(self, call: Call) -> None:
        allowed = call.params.get("allowed_updates")
        if isinstance(allowed, list):
            self.allowed_updates = allowed

    @staticmethod
    def _webhook_conflict() -> ApiError:
        return ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active;"
            " use deleteWebhook to delete the webhook first",
        )

    @staticmethod
    def _poll_conflict() -> ApiError:
        return ApiError(
            409,
            "Conflict: terminated by other getUpdates request;"
            " make sure that only one bot instance is running",
        )

    async def _m_getUpdates(self, call: Call) -> Any:
        if self.webhook is not None:
            raise self._webhook_conflict()
        # As Telegram: a second poller ends the first one's request with 409 Conflict (a poll
        # whose connection is already closed, e.g. of a killed bot, is no conflict).
        others = [c for c in self._polls.values() if c.connected()]
        if others:
            for other in others:
                self._superseded.add(id(other))
            self.poll_conflicts.extend(others)
            self._new_update.set()
        self._polls[id(call)] = call
        try:
            return await self._poll(call)
        finally:
            self._polls.pop(id(call), None)
            self._superseded.discard(id(call))

    async def _poll(self, call: Call) -> Any:
        self._remember_allowed(call)
        offset = int(call.params.get("offset") or 0)
        timeout = float(call.params.get("timeout") or 0)
        if offset:
            self.confirmed_offset = offset
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while True:
            if self.webhook is not None:  # set while this long poll waited
                raise self._webhook_conflict()
            if id(call) in self._superseded:
                raise self._poll_conflict()
            ready = [u for u in self._updates if u["update_id"] >= offset and self._wanted(u)]
            if ready:
                batch = ready[: int(call.params.get("limit") or 100)]
                now = time.monotonic()
                for update in batch:
                    self.handed_out.setdefault(update["update_id"], now)
                return batch
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout=left)
            except asyncio.TimeoutError:
                return []

    def _store(
        self, call: Call, *, text: str | None = None, caption: str | None = None
    ) -> SentMessage:
        chat_id = call.chat_id
        if chat_id is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        reply = call.params.get("reply_parameters") or {}
        reply_to = reply.get("message_id") if isinstance(reply, dict) else None
        sent = SentMessage(
            chat_id=chat_id,
            message_id=self._next_message_id(chat_id),
            method=call.method,
            text=text,
            caption=caption,
            reply_to=reply_to,
            reply_markup=call.params.get("reply_markup"),
        )
        self.messages[(chat_id, sent.message_id)] = sent
        return sent

    async def _m_sendMessage(self, call: Call) -> Any:
        text = call.params.get("text")
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        return self._message_object(self._store(call, text=text))

    def _existing(self, call: Call, action: str) -> SentMessage:
        key = (call.chat_id, call.params.get("message_id"))
        sent = self.messages.get(key)  # type: ignore[arg-type]
        if sent is None or sent.deleted:
            raise ApiError(400, f"Bad Request: message to {action} not found")
        return sent

    async def _m_editMessageText(self, call: Call) -> Any:
        sent = self._existing(call, "edit")
        text = call.params.get("text") or ""
        markup = call.params.get("reply_markup")
        if text == sent.text and markup == sent.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply"
                " markup are exactly the same as a current content and reply markup of the message",
            )
        sent.text = text
        sent.reply_markup = markup
        sent.edits.append((call.time, text))
        return self._message_object(sent)

    async def _m_editMessageReplyMarkup(self, call: Call) -> Any:
        sent = self._existing(call, "edit")
        markup = call.params.get("reply_markup")
        if markup == sent.reply_markup:
            raise ApiError(400, "Bad Request: message is not modified")
        sent.reply_markup = markup
        return self._message_object(sent)

    async def _m_editMessageCaption(self, call: Call) -> Any:
        sent = self._existing(call, "edit")
        if sent.media is None:
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        caption = call.params.get("caption")
        if caption and len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        markup = call.params.get("reply_markup")
        if caption == sent.caption and markup == sent.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and reply"
                " markup are exactly the same as a current content and reply markup of the message",
            )
        sent.caption = caption
        sent.reply_markup = markup
        sent.edits.append((call.time, caption or ""))
        return self._message_object(sent)

    def media_upload(self, call: Call, field_name: str = "media") -> Upload | None:
        """The file an ``InputMedia`` field of ``call`` points at (``attach://``), if uploaded."""
        media = call.params.get("media")
        if not isinstance(media, dict):
            return None
        value = media.get(field_name)
        if isinstance(value, str) and value.startswith("attach://"):
            return call.files.get(value.removeprefix("attach://"))
        return None

    def _media_object(
        self, kind: str, upload: Upload | None, media: dict[str, Any], thumb: Upload | None
    ) -> Any:
        if kind == "photo":
            return [{**self._file(upload, "photo"), "width": 320, "height": 180}]
        obj = {
            **self._file(upload, kind),
            "width": int(media.get("width") or 0),
            "height": int(media.get("height") or 0),
            "duration": int(media.get("duration") or 0),
            "mime_type": "video/mp4",
        }
        if thumb is not None:
            obj["thumbnail"] = {**self._file(thumb, "thumb"), "width": 320, "height": 180}
        return obj

    async def _m_editMessageMedia(self, call: Call) -> Any:
        sent = self._existing(call, "edit")
        media = call.params.get("media")
        if not isinstance(media, dict) or media.get("type") not in ("photo", "video"):
            raise ApiError(400, "Bad Request: can't parse InputMedia: media type is invalid")
        if sent.media is None:
            raise ApiError(400, "Bad Request: there is no media in the message to edit")
        upload = self.media_upload(call)
        reference = media.get("media")
        if upload is None and (
            not isinstance(reference, str) or reference.startswith("attach://") or not reference
        ):
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        caption = media.get("caption")
        if caption and len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        markup = call.params.get("reply_markup")
        current_id = (sent.media_object or {}) if isinstance(sent.media_object, dict) else {}
        if (
            upload is None
            and reference == current_id.get("file_id")
            and caption == sent.caption
            and markup == sent.reply_markup
        ):
            raise ApiError(400, "Bad Request: message is not modified")
        kind = str(media["type"])
        sent.media = kind
        sent.upload = upload
        sent.media_object = self._media_object(
            kind, upload, media, self.media_upload(call, "thumbnail")
        )
        sent.caption = caption
        sent.reply_markup = markup
        sent.media_edits.append((call.time, kind))
        sent.edits.append((call.time, caption or ""))
        return self._message_object(sent)

    def video_message_count(self, chat_id: int | None = None) -> int:
        """Messages that show a video now (sent as one, or a photo edited into one)."""
        return sum(
            1
            for m in self.messages.values()
            if m.media == "video" and not m.deleted and (chat_id is None or m.chat_id == chat_id)
        )

    async def _m_deleteMessage(self, call: Call) -> Any:
        sent = self._existing(call, "delete")
        sent.deleted = True
        return True

    def _file(self, upload: Upload | None, kind: str) -> dict[str, Any]:
        number = next(self._file_ids)
        return {
            "file_id": f"{kind}-file-{number}",
            "file_unique_id": f"{kind}-u{number}",
            "file_size": len(upload.data) if upload else 0,
        }

    async def _m_sendVideo(self, call: Call) -> Any:
        upload = call.file("video")
        if upload is None and not isinstance(call.params.get("video"), str):
            raise ApiError(400, "Bad Request: there is no video in the request")
        caption = call.params.get("caption")
        if caption and len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        sent = self._store(call, caption=caption)
        sent.media, sent.upload = "video", upload
        sent.media_object = self._media_object("video", upload, call.params, call.file("thumbnail"))
        return self._message_object(sent)

    async def _m_sendPhoto(self, call: Call) -> Any:
        upload = call.file("photo")
        if upload is None and not isinstance(call.params.get("photo"), str):
            raise ApiError(400, "Bad Request: there is no photo in the request")
        caption = call.params.get("caption")
        if caption and len(caption) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        sent = self._store(call, caption=caption)
        sent.media, sent.upload = "photo", upload
        sent.media_object = [{**self._file(upload, "photo"), "width": 640, "height": 480}]
        return self._message_object(sent)

    async def _m_sendDocument(self, call: Call) -> Any:
        upload = call.file("document")
        sent = self._store(call, caption=call.params.get("caption"))
        message = self._message_object(sent)
        message["document"] = {
            **self._file(upload, "doc"),
            "file_name": upload.filename if upload else None,
        }
        return message

    async def _m_sendChatAction(self, call: Call) -> Any:
        return True

    async def _m_answerCallbackQuery(self, call: Call) -> Any:
        return True

    async def _m_setMyCommands(self, call: Call) -> Any:
        return True

    async def _m_deleteMyCommands(self, call: Call) -> Any:
        return True

    async def _m_setMyDescription(self, call: Call) -> Any:
        if len(call.params.get("description") or "") > 512:
            raise ApiError(400, "Bad Request: description is too long")
        return True

    async def _m_setMyShortDescription(self, call: Call) -> Any:
        if len(call.params.get("short_description") or "") > 120:
            raise ApiError(400, "Bad Request: short description is too long")
        return True

    async def _m_setWebhook(self, call: Call) -> Any:
        url = str(call.params.get("url") or "")
        if not url:  # Telegram: an empty url removes the webhook
            return await self._m_deleteWebhook(call)
        if not url.startswith(("https://", "http://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        secret = call.params.get("secret_token")
        if secret is not None and not (
            1 <= len(secret) <= 256
            and all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)
        ):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        self._remember_allowed(call)
        if call.params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = WebhookConfig(url, secret, int(call.params.get("max_connections") or 40))
        self._new_update.set()  # a long poll in progress ends with 409
        self._webhook_wakeup.set()
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.create_task(self._deliver(), name="fake-webhook-delivery")
        return True

    async def _m_deleteWebhook(self, call: Call) -> Any:
        self.webhook = None
        await self._stop_delivery()
        if call.params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _m_getWebhookInfo(self, call: Call) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook.url if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len([u for u in self._updates if self._wanted(u)]),
        }
        if self.webhook is not None:
            info["max_connections"] = self.webhook.max_connections
            if self.allowed_updates:
                info["allowed_updates"] = self.allowed_updates
        if self.last_webhook_error:
            info["last_error_date"] = int(time.time())
            info["last_error_message"] = self.last_webhook_error
        return info

    # ------------------------------------------------------------ webhook deliveries

    async def _post(
        self, client: aiohttp.ClientSession, url: str, update: dict[str, Any], secret: str | None
    ) -> int:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        self.handed_out.setdefault(update["update_id"], time.monotonic())
        try:
            async with client.post(
                url, json=update, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            status, self.last_webhook_error = 0, f"Connection failed: {type(error).__name__}"
        else:
            if status != 200:
                self.last_webhook_error = f"Wrong response from the webhook: {status}"
        delivery = WebhookDelivery(update["update_id"], status, secret is not None)
        self.webhook_deliveries.append(delivery)
        if self.on_webhook_answer is not None:
            self.on_webhook_answer(delivery)
        return status

    async def _deliver(self) -> None:
        """Telegram's side of a webhook: POST the oldest pending update until it gets a 200."""
        async with aiohttp.ClientSession() as client:
            while self.webhook is not None:
                self._updates = [u for u in self._updates if self._wanted(u)]  # never delivered
                if not self._updates:
                    self._webhook_wakeup.clear()
                    await self._webhook_wakeup.wait()
                    continue
                update = self._updates[0]
                status = await self._post(
                    client, self.webhook.url, update, self.webhook.secret_token
                )
                if status == 200:
                    if update in self._updates:
                        self._updates.remove(update)
                    self.confirmed_offset = max(self.confirmed_offset, update["update_id"] + 1)
                else:
                    await asyncio.sleep(self.webhook_retry_delay)

    async def _stop_delivery(self) -> None:
        task, self._delivery = self._delivery, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _m_close(self, call: Call) -> Any:
        return True

    async def _m_logOut(self, call: Call) -> Any:
        return True

    async def _m_getFile(self, call: Call) -> Any:
        file_id = call.params.get("file_id", "")
        result: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_path": f"files/{file_id}",
        }
        if file_id in self.files:
            result["file_size"] = len(self.files[file_id])
            if self.local_files_dir is not None:
                path = self.local_files_dir / file_id
                path.write_bytes(self.files[file_id])
                result["file_path"] = str(path.resolve())
        return result

    async def _download(self, request: web.Request) -> web.StreamResponse:
        """``GET /file/bot<token>/<file_path>``: the content of a file ``getFile`` described."""
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        self.downloads.append(path)
        if self.download_hook is not None:
            awaitable = self.download_hook(path)
            if awaitable is not None:
                await awaitable
        data = self.files.get(path.removeprefix("files/"))
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="application/octet-stream")


class ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


WEBHOOK_SECRET = "fake-telegram_secret-0123456789"
MODES = ("polling", "webhook")
"""How a bot under test receives updates: ``getUpdates`` or a webhook the fake POSTs to."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now (for a bot's webhook server)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def webhook_overrides(port: int | None = None) -> dict[str, str]:
    """``WEBHOOK_URL``/``WEBHOOK_SECRET``/``WEBHOOK_LISTEN`` of a bot served on 127.0.0.1 (plain
    http: allowed because the bot's ``TELEGRAM_API_URL`` is set, as with a self-hosted Bot API)."""
    port = free_port() if port is None else port
    return {
        "webhook_url": f"http://127.0.0.1:{port}/telegram/webhook",
        "webhook_secret": WEBHOOK_SECRET,
        "webhook_listen": f"127.0.0.1:{port}",
    }


def bot_settings(tg: FakeTelegram, data_dir: Any, **overrides: Any) -> Any:
    """``bot.config.Settings`` pointing at ``tg``, with files under ``data_dir`` and fast cadences
    (no ``.env`` is read, so a developer's own file never leaks into a test)."""
    from pathlib import Path

    from bot.config import Settings

    data = Path(data_dir)
    values: dict[str, Any] = {
        "bot_token": tg.token,
        "telegram_api_url": tg.base_url,
        "database_path": data / "bot.sqlite3",
        "video_dir": data / "videos",
        "status_min_interval": 0.2,
        "queue_refresh_interval": 0.2,
        "polling_timeout": 1,
        "translator_model": "none",
        "flood_burst": 0,  # tests send fast on purpose; tests/reliability/test_flood.py sets it
        # The fake models' default job is tiny (4 steps, 64x64), so the slow jobs tests ask for
        # (--steps 150) cost dozens of ordinary videos: budgets off unless a test sets them
        # (tests/handlers/test_budgets.py, tests/e2e/test_fair_queue.py).
        "max_cost_per_job": 0,
        "daily_cost_per_user": 0,
        "daily_cost_per_chat": 0,
        # Most e2e tests read the text status and sendVideo (PREVIEW=off); the live preview and
        # delivery by editMessageMedia (PREVIEW=on, the default) have their own tests
        # (tests/e2e/test_preview.py) and run in the kill -9 matrix (tests/reliability).
        "preview": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
