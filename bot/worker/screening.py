"""The content policy inside the worker: the prompt the model gets, and the video it made.

Two checks run in the render thread, where the text and the file first exist:

* the translated prompt (``Stage.TRANSLATE``'s ``detail``, the English text the model is about to
  read) is checked against ``BLOCKED_WORDS_FILE`` by :func:`prompt_guard` before anything is
  rendered; a match raises :class:`PromptRefused` out of ``backend.run``;
* the finished MP4 goes through the optional ``NSFW_MODEL`` (:class:`VideoScreen`, e.g.
  ``pipeline.nsfw.NsfwClassifier``); a flagged video's files are deleted at once and
  :class:`VideoWithheld` is raised, so the job never becomes ``generated`` and nothing can send it.

The loop (``bot/worker/loop.py``) turns either into a failed job with its ``FailReason``, counts it
and tells the user in neutral words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.progress import Progress, Stage

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.policy.content import ContentPolicy, Verdict

log = logging.getLogger(__name__)


class PromptRefused(Exception):
    """The text the model would read matched the blocked words."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.describe())
        self.verdict = verdict


class VideoWithheld(Exception):
    """The classifier flagged the finished video; its files are already deleted."""

    def __init__(self, score: float, label: str) -> None:
        super().__init__(f"{label} {score:.2f}")
        self.score = score
        self.label = label


class ScreenVerdict(Protocol):
    flagged: bool
    score: float
    label: str


class VideoScreen(Protocol):
    """``pipeline.nsfw.NsfwClassifier``: blocking, called in the worker thread only."""

    def check_video(self, path: Path) -> ScreenVerdict: ...


def prompt_guard(
    policy: ContentPolicy | None, forward: Callable[[Progress], None]
) -> Callable[[Progress], None]:
    """A progress callback (called in the render thread) that refuses a blocked translation
    before passing the report on — so a refused English prompt is neither shown nor stored."""

    def on_progress(progress: Progress) -> None:
        if policy is not None and progress.stage == Stage.TRANSLATE and progress.detail:
            verdict = policy.check(progress.detail)
            if verdict.blocked:
                raise PromptRefused(verdict)
        forward(progress)

    return on_progress


def screen_video(screen: VideoScreen | None, result: Any) -> None:
    """Withhold ``result``'s video when ``screen`` flags it: delete its files, raise."""
    if screen is None:
        return
    video = result.video
    verdict = screen.check_video(Path(video.path))
    if not verdict.flagged:
        return
    for path in (video.path, getattr(video, "thumbnail", None)):
        if path:
            with contextlib.suppress(FileNotFoundError):
                Path(path).unlink()
    raise VideoWithheld(float(verdict.score), str(verdict.label))


async def load_screen(settings: Settings) -> VideoScreen | None:
    """``NSFW_MODEL`` loaded in a thread (None when unset); torch is imported only then."""
    if not settings.nsfw_model:
        return None
    from pipeline.nsfw import NsfwClassifier, pick_device

    def load() -> NsfwClassifier:
        device = pick_device(settings.device)
        return NsfwClassifier.load(settings.nsfw_model or "", device, settings.nsfw_threshold)

    screen = await asyncio.to_thread(load)
    log.info("NSFW_MODEL loaded on %s: unsafe labels %s", screen.device, screen.unsafe)
    return screen
