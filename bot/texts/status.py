"""A job's status message (queued, rendering, uploading), its final words and the video caption."""

from __future__ import annotations

from bot.i18n import _, duration, ngettext
from bot.storage.jobs import FailReason
from bot.texts import CAPTION_LIMIT, progress_bar, shorten
from bot.texts import policy as policy_texts
from bot.texts import requests as request_texts
from pipeline.progress import Stage


def queued(
    job_id: int, position: int | None, eta_seconds: float | None, cost: float | None = None
) -> str:
    """A waiting job: its number (for /cancel), its place in the queue, when it should be ready
    and, when given (a costly request), its cost in ordinary videos."""
    lines = [_("⏳ Request #{id} accepted.").format(id=job_id)]
    if position is not None:
        lines.append(_("Place in the queue: {n}").format(n=position))
    if eta_seconds is not None:
        lines.append(
            _("The video will be ready in about {wait}").format(wait=duration(eta_seconds))
        )
    if cost is not None:
        lines.append(request_texts.request_cost(cost))
    return "\n".join(lines)


def resumed() -> str:
    return _("🔄 The bot restarted. Your request is not lost — continuing.")


def resumed_elsewhere() -> str:
    """A worker (another process or machine) stopped while rendering; another one goes on."""
    return _("🔄 The server rendering your video stopped. Your request is not lost — continuing.")


def starting() -> str:
    return _("🎬 Starting the generation…")


def uploading() -> str:
    return _("📤 Sending the video…")


def stage_line(stage: Stage | None) -> str:
    """What the job is doing now, one line."""
    if stage == Stage.TRANSLATE:
        return _("🌐 Translating the request into English…")
    if stage == Stage.ENCODE_TEXT:
        return _("🧠 Reading the request…")
    if stage == Stage.DECODE:
        return _("🎞 Assembling the frames…")
    if stage == Stage.ENCODE_VIDEO:
        return _("📦 Encoding the video…")
    if stage is None:
        return starting()
    return _("🎬 Generating the video")


def running(
    prompt_en: str | None,
    stage: Stage | None,
    *,
    fraction: float | None = None,
    step: int | None = None,
    total: int | None = None,
    eta_seconds: float | None = None,
    job_id: int | None = None,
) -> str:
    """A running job: its number, the English prompt, the stage, a bar, step i/n and the ETA."""
    lines = [_("Request #{id} in progress").format(id=job_id)] if job_id is not None else []
    if prompt_en:
        lines.append(_("Prompt for the model: {prompt}").format(prompt=shorten(prompt_en, 300)))
        lines.append("")
    lines.append(stage_line(stage))
    if fraction is not None:
        lines.append(f"{progress_bar(fraction)} {int(fraction * 100)}%")
    details = []
    if step is not None and total:
        details.append(_("step {step}/{total}").format(step=step, total=total))
    if eta_seconds is not None:
        details.append(_("about {wait} left").format(wait=duration(eta_seconds)))
    if details:
        line = ", ".join(details)
        lines.append(line[:1].upper() + line[1:])
    return "\n".join(lines)


# ---------------------------------------------------------------- the end of a job


def cancelled() -> str:
    return _("✖️ Request cancelled.")


def failure(reason: str | None) -> str:
    """The final word of a failed job, from its stored :class:`FailReason` code (rows written by
    older versions hold the text itself: it is shown as it is)."""
    if reason == FailReason.OUT_OF_MEMORY:
        return _(
            "😔 There was not enough video memory for such a video. Try fewer frames (--frames) "
            "or a smaller size (--size), for example --size 480x272."
        )
    if reason == FailReason.TOO_LARGE:
        return _(
            "😔 The video came out too large to send through Telegram even after compression. "
            "Try fewer frames (--frames) or a smaller size (--size)."
        )
    if reason == FailReason.INTERRUPTED:
        return _(
            "😔 The request was interrupted several times by restarts of the bot, so I stopped "
            "it. Send it again if you still need the video."
        )
    if reason == FailReason.DELIVERY:
        return _("😔 The video is ready but could not be sent. Try requesting it again.")
    if reason == FailReason.VIDEO_MISSING:
        return _(
            "😔 The video was ready, but the file was lost when the bot restarted. Send the "
            "request again."
        )
    if reason == FailReason.CONTENT_POLICY:
        return policy_texts.render_refused()
    if reason == FailReason.WITHHELD:
        return policy_texts.withheld()
    if reason == FailReason.NO_IMAGE_MODEL:
        return _(
            "😔 Photos are no longer animated here: the image-to-video model was switched off "
            "while your request waited. Describe the video in words instead."
        )
    over_limit = FailReason.parse_over_limit(reason)
    if over_limit is not None:
        return over_limit_failure(*over_limit)
    if reason in (None, FailReason.GENERATION, FailReason.BLOCKED):
        return _(
            "😔 Could not make the video: an error happened during generation. Try again; if it "
            "happens again, lower the number of frames (--frames) or the size (--size)."
        )
    return reason


def over_limit_failure(option: str, maximum: int | None) -> str:
    """A queued job the current limits no longer allow (the operator lowered them after it was
    queued): which option, and its current maximum when there is one."""
    label = request_texts.option_label(option)
    if maximum is not None and option == "size":
        limit = _("now at most {max} pixels, width × height").format(max=maximum)
    elif maximum is not None:
        limit = _("now at most {max}").format(max=maximum)
    else:
        limit = _("see /help")
    return _(
        "😔 The request was not started: the bot's limits were lowered after it was queued, and "
        "its option {label} no longer fits ({limit}). Nothing was generated and it does not count "
        "against your daily budget. Send it again with a smaller value."
    ).format(label=label, limit=limit)


def caption(
    prompt: str,
    prompt_en: str | None,
    *,
    seed: int,
    steps: int,
    width: int,
    height: int,
    frames: int,
    fps: int,
    seconds: float | None,
) -> str:
    """The video caption, always ≤ 1024 characters: the prompts are cut, the facts never."""
    facts = _("Seed: {seed} · steps: {steps} · {size}, {frames}, {fps} fps").format(
        seed=seed,
        steps=steps,
        size=f"{width}x{height}",
        frames=ngettext("{n} frame", "{n} frames", frames).format(n=frames),
        fps=fps,
    )
    if seconds is not None:
        facts += "\n" + _("Done in {time}").format(time=duration(seconds))
    show_en = bool(prompt_en) and (prompt_en or "").strip() != prompt.strip()
    room = CAPTION_LIMIT - len(facts) - 2
    if show_en:
        room -= len("\nEN: ")
        prompt_room = max(40, room // 2)
        en_room = room - min(len(prompt.strip()), prompt_room)
        head = shorten(prompt, prompt_room) + "\nEN: " + shorten(prompt_en or "", en_room)
    else:
        head = shorten(prompt, room)
    return shorten(f"{head}\n\n{facts}", CAPTION_LIMIT)


def button_repeat() -> str:
    return _("🔁 Another take")


def button_settings() -> str:
    return _("⚙️ Settings")


def button_cancel() -> str:
    return _("✖ Cancel")


def ready(job_id: int) -> str:
    """The short reply after the video replaced the preview (an edit does not notify)."""
    return _("✅ Done: video #{id} is above.").format(id=job_id)
