"""Share links: the link message, the shared request as its opener sees it, and their refusals."""

from __future__ import annotations

from bot.i18n import _, ngettext
from bot.texts import MESSAGE_LIMIT, shorten
from bot.texts.settings import value_label
from pipeline.options import GenerationOptions

PROMPT_ROOM = 1500
"""Characters of a shared prompt shown (the whole message stays far under 4096)."""


def button_share() -> str:
    return _("🔗 Share")


def button_send() -> str:
    return _("📤 Send to a friend")


def button_render() -> str:
    return _("🎬 Make this video")


def link_message(url: str) -> str:
    return _(
        "🔗 A link to this request:\n{url}\n\nWhoever opens it sees the description and the "
        "options and can make the same video with one tap, as their own request. The link does "
        "not show who you are."
    ).format(url=url)


def invitation() -> str:
    """The text Telegram's share sheet puts beside the link."""
    return _("A video from a description: open the link and make it with one tap.")


def shared_request(options: GenerationOptions) -> str:
    """The request behind a link, as its opener sees it before rendering it."""
    facts = _("Seed: {seed} · steps: {steps} · {size}, {frames}, {fps} fps").format(
        seed=options.seed,
        steps=options.steps,
        size=f"{options.width}x{options.height}",
        frames=ngettext("{n} frame", "{n} frames", options.frames).format(n=options.frames),
        fps=options.fps,
    )
    lines = [_("🎬 A shared request:"), "", shorten(options.prompt, PROMPT_ROOM), ""]
    if options.negative_prompt.strip():
        lines.append(
            _("Not to show: {text}").format(text=shorten(options.negative_prompt, PROMPT_ROOM))
        )
    lines.append(facts)
    lines.append(_("Quality: {value}").format(value=value_label("quality", options.quality)))
    lines += ["", _("Tap the button to make this video: it counts as your own request.")]
    return shorten("\n".join(lines), MESSAGE_LIMIT)


def queued(number: int) -> str:
    return _("🎬 Request #{id} is queued.").format(id=number)


def link_invalid() -> str:
    return _(
        "This link does not work: it is mistyped or was never made. Nothing was queued. Send a "
        "description to make your own video."
    )


def link_expired() -> str:
    return _(
        "This link has expired: the bot no longer keeps the request it points to. Nothing was "
        "queued. Send a description to make your own video."
    )


def cannot_share() -> str:
    return _("This request is no longer kept, so it cannot be shared.")
