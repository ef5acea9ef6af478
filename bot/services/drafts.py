"""The "ask" mode of the prompt improver: show the improved prompt, queue what the user picks.

A request of a user on "ask" (the default with ``PROMPT_MODEL``) is checked like any request
(options, limits: :meth:`RequestService.check`), written as a draft (``bot/storage/drafts.py``),
improved in this process's improver thread — never on the event loop —, and shown with two
buttons, «✅ Render this» / «✏️ As I wrote it». A press queues exactly one job through
:meth:`RequestService.submit`: the improved English prompt as the job's ``prompt_en`` (no
translation), or the request as written (translated as usual). A failed improvement (timeout,
an output the checks refuse, an error) queues the request as written at once, with a note: the
user still gets a video.

Every step is durable and idempotent, so a crash at any point loses nothing and queues nothing
twice: the draft is created once per update (a replayed update continues it: improves again if
the first run died while improving, shows it if it was never shown); exactly one press moves it
to ``chosen`` (a guarded UPDATE that records the press's update id); the job carries that press's
update id, so the same press replayed finds its job; any other press, a forged token, someone
else's draft or a draft older than :data:`DRAFT_TTL` changes nothing and says so.

Where it runs: the improver thread is this process's. In a front end without the model (no
local improver), "ask" behaves like "always": the job is queued at once and the worker improves
the prompt at render time (the ``improve`` flag of the job, a stage in place of translation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram.exceptions import TelegramAPIError

from bot.i18n import use_locale
from bot.services.preferences import improve_mode
from bot.services.requests import Admitted, Origin
from bot.storage.drafts import Choice, Draft, DraftState
from bot.telegram.keyboards import improve_keyboard
from bot.telegram.replies import reply_to
from bot.texts import MESSAGE_LIMIT, shorten
from bot.texts import improve as texts
from bot.texts import queue as queue_texts
from pipeline.options import OptionError, parse_request

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.backend import ImprovedPromptLike, PromptImprover
    from bot.config import Settings
    from bot.context import Actor
    from bot.services.requests import RequestService
    from bot.storage.drafts import DraftStore
    from bot.storage.users import UserStore

log = logging.getLogger(__name__)

DRAFT_TTL = 24 * 3600.0
"""Seconds a shown draft can be chosen; older buttons say so and change nothing."""
DRAFT_KEEP = 7 * 24 * 3600.0
"""Drafts are deleted this long after they were made (they hold the request's text)."""
TYPING_EVERY = 4.5
"""Seconds between two "typing…" chat actions while the prompt is being written."""
WAIT_FACTOR = 2.0
"""A request waits at most this many ``PROMPT_TIMEOUT`` for its improvement (its own run and
the runs queued before it in the improver thread); then it goes as written."""
IMPROVING_GRACE = 60.0
"""Seconds beyond ``PROMPT_TIMEOUT`` after which a draft still "improving" no longer blocks its
user's next request (its handler died and was not replayed)."""


@dataclass(frozen=True)
class Chosen:
    """The outcome of a press: the answer to show on the button and the job it queued."""

    answer: str
    admitted: Admitted | None = None
    alert: bool = True


class PromptDrafts:
    """Requests of users on "ask" (see the module docstring); everything else goes straight to
    :meth:`RequestService.submit`."""

    def __init__(
        self,
        *,
        bot: Bot,
        drafts: DraftStore,
        users: UserStore,
        requests: RequestService,
        settings: Settings,
        improver: PromptImprover | None,
    ) -> None:
        self.bot = bot
        self.drafts = drafts
        self.users = users
        self.requests = requests
        self.settings = settings
        self.improver = improver
        self._executor: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Stop the improver thread (an improvement in flight is replayed at the next start)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def mode(self, actor: Actor) -> str:
        """``always`` / ``ask`` / ``never`` for ``actor``'s requests."""
        stored = await self.users.get_settings(actor.user_id)
        return improve_mode(stored, self.settings.prompt_model is not None)

    async def submit(self, actor: Actor, text: str, origin: Origin) -> Admitted:
        """A text request: a draft for users on "ask" where the improver runs here, else the
        request service (whose settings decide whether the worker improves it)."""
        if self.improver is None or await self.mode(actor) != "ask":
            return await self.requests.submit(actor, text, origin)
        draft = await self.drafts.by_update(origin.update_id)
        if draft is None:
            refusal = await self.requests.check(actor, text, origin.chat_id)
            if refusal is not None:
                return Admitted(refusal=refusal)
            since = self.drafts.clock() - self.settings.prompt_timeout - IMPROVING_GRACE
            if await self.drafts.improving(actor.user_id, since):
                return Admitted(refusal=texts.busy())
            await self.drafts.prune(self.drafts.clock() - DRAFT_KEEP)
            draft = await self.drafts.create(
                user_id=actor.user_id,
                chat_id=origin.chat_id,
                request_message_id=origin.request_message_id,
                request=text,
                locale=actor.locale,
                update_id=origin.update_id,
            )
        return await self._advance(actor, draft, origin)

    async def _advance(self, actor: Actor, draft: Draft, origin: Origin) -> Admitted:
        """Take ``draft`` as far as it goes without the user: improved, then shown."""
        if draft.state == DraftState.IMPROVING:
            result = await self._improve(draft)
            if result is None or not result.improved:
                reason = result.reason if result is not None else "error"
                await self.drafts.give_up(draft.token, reason, origin.update_id)
                await self._say(draft, texts.not_improved())
            else:
                await self.drafts.set_improved(draft.token, result.text)
            draft = await self.drafts.get(draft.token) or draft
        if draft.state == DraftState.READY:
            if draft.message_id is None:
                await self._show(draft)
            return Admitted()
        if draft.choice_update_id == origin.update_id:
            # Improvement failed: the request itself queues its text as written (again, after a
            # crash: the request service then finds the job by this update id).
            return await self.requests.submit(actor, draft.request, origin, improve=False)
        return Admitted(replayed=True)

    async def _improve(self, draft: Draft) -> ImprovedPromptLike | None:
        """The improver's answer for the request's prompt (its options stripped), in the
        improver thread; None when the improver itself broke."""
        assert self.improver is not None
        try:
            prompt = parse_request(draft.request).prompt
        except OptionError:
            prompt = draft.request
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="improve")
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._executor, self.improver.improve_prompt, prompt)
        # The improver's own timeout bounds a run; this bounds the wait behind other users'
        # runs too (a request still waiting is dropped from the thread's queue). Meanwhile the
        # user sees "typing…" (a chat action lasts 5 s: renewed).
        deadline = loop.time() + self.settings.prompt_timeout * WAIT_FACTOR
        while not work.done():
            left = deadline - loop.time()
            if left <= 0:
                work.cancel()
                log.warning("prompt improvement waited too long: the request goes as written")
                return None
            await self._typing(draft.chat_id)
            await asyncio.wait({work}, timeout=min(TYPING_EVERY, left))
        try:
            return work.result()
        except Exception:
            log.exception("prompt improvement failed")
            return None

    async def _typing(self, chat_id: int) -> None:
        with contextlib.suppress(TelegramAPIError):  # a nicety
            await self.bot.send_chat_action(chat_id=chat_id, action="typing")

    async def _show(self, draft: Draft) -> None:
        with use_locale(draft.locale):
            text = shorten(texts.proposal(draft.improved or ""), MESSAGE_LIMIT)
            markup = improve_keyboard(draft.token)
        message = await self.bot.send_message(
            chat_id=draft.chat_id,
            text=text,
            reply_markup=markup,
            reply_parameters=reply_to(draft.request_message_id),
        )
        await self.drafts.set_message(draft.token, message.message_id)

    async def _say(self, draft: Draft, text: str) -> None:
        try:
            await self.bot.send_message(
                chat_id=draft.chat_id,
                text=text,
                reply_parameters=reply_to(draft.request_message_id),
            )
        except TelegramAPIError as error:
            log.warning("draft note not sent: %s", error)

    # ------------------------------------------------------------ the buttons

    async def choose(self, actor: Actor, token: str, choice: str, update_id: int | None) -> Chosen:
        """A press of «✅ Render this» (``improved``) or «✏️ As I wrote it» (``plain``)."""
        draft = await self.drafts.get(token)
        if draft is None or draft.user_id != actor.user_id or choice not in Choice.ALL:
            # The same answer for a draft that does not exist and for someone else's.
            return Chosen(queue_texts.button_foreign())
        if draft.state == DraftState.CHOSEN:
            if update_id is None or draft.choice_update_id != update_id:
                return Chosen(texts.already_chosen())
            # The same press, replayed after a crash: queue (or find) its job again.
        elif draft.state != DraftState.READY:
            return Chosen(texts.still_improving())
        elif self.drafts.clock() - draft.created_at > DRAFT_TTL:
            return Chosen(texts.expired())
        elif not await self.drafts.choose(token, choice, update_id):
            return Chosen(texts.already_chosen())  # another press won the race
        draft = await self.drafts.get(token) or draft
        improved = draft.choice == Choice.IMPROVED
        origin = Origin(draft.chat_id, draft.request_message_id, update_id)
        admitted = await self.requests.submit(
            actor,
            draft.request,
            origin,
            prompt_en=draft.improved if improved else None,
            improve=improved,
        )
        if admitted.refusal is not None:
            # Nothing was queued (a limit): the buttons work again once the limit allows.
            await self.drafts.reopen(token, update_id)
            return Chosen(admitted.refusal, admitted)
        if admitted.replayed or admitted.job is None:
            return Chosen("", admitted, alert=False)
        number = admitted.job.number
        answer = texts.queued_improved(number) if improved else texts.queued_plain(number)
        return Chosen(answer, admitted, alert=False)
