"""Answers to a request that is not queued: a bad option (``OptionError``) or a limit.

The pipeline's error carries a machine-readable ``code``; the text is written here from that code
and the *loaded model's* limits, so the range shown is exactly the one the validator applied.
Every echoed user value is shortened, so no answer can exceed Telegram's limits.
"""

from __future__ import annotations

from bot.i18n import _, duration, ngettext, number
from bot.texts import shorten
from pipeline.options import MAX_SEED, OPTION_NAMES, ModelLimits, OptionError

ECHO_LIMIT = 40
"""Characters of a user's value quoted back in an answer."""


def _labels() -> dict[str, str]:
    return {
        "steps": _("--steps (steps)"),
        "seed": _("--seed (seed)"),
        "frames": _("--frames (frames)"),
        "fps": _("--fps (frames per second)"),
        "size": _("--size (size)"),
        "guidance": _("--guidance (text guidance)"),
        "negative": _("--negative (what must not be shown)"),
        "prompt": _("Description"),
    }


def option_label(option: str) -> str:
    """``--steps (steps)``: how an option is named to users."""
    return _labels().get(option) or f"--{shorten(option, ECHO_LIMIT)}"


def allowed_range(option: str, limits: ModelLimits, max_prompt_chars: int) -> str | None:
    """The allowed values of ``option`` for the loaded model."""
    m = limits.frame_multiple
    if option == "steps":
        return _("a whole number from 1 to {max}").format(max=limits.max_steps)
    if option == "seed":
        return _("a whole number from 0 to {max}").format(max=MAX_SEED)
    if option == "frames" and m > 1:
        return _("from {low} to {high}, of the form {m}k+{r}").format(
            low=limits.first_valid_frames(),
            high=limits.last_valid_frames(),
            m=m,
            r=limits.frame_remainder % m,
        )
    if option == "frames":
        return _("from {low} to {high}").format(
            low=limits.first_valid_frames(), high=limits.last_valid_frames()
        )
    if option == "fps":
        return _("a whole number from 1 to {max}").format(max=limits.max_fps)
    if option == "size":
        return _(
            "WxH, sides from {low} to {high}, multiples of {side}, width × height at most {pixels}"
        ).format(
            low=limits.min_side,
            high=limits.max_side,
            side=limits.side_multiple,
            pixels=limits.max_pixels,
        )
    if option == "guidance":
        return _("a number from 0 to {max}").format(max=f"{limits.max_guidance:g}")
    if option == "negative":
        return _('text in quotes, up to {max} characters: --negative "blurry"').format(
            max=limits.max_negative_chars
        )
    if option == "prompt":
        return _("up to {max} characters").format(max=max_prompt_chars)
    return None


def _reason(error: OptionError, limits: ModelLimits) -> str:
    code, option = error.code, error.option
    value = shorten(error.value, ECHO_LIMIT) if error.value else ""
    if code == "unknown_option":
        return _("there is no such option")
    if code == "missing_value":
        return _("no value given")
    if code == "not_integer":
        return _("a whole number is needed, not “{value}”").format(value=value)
    if code == "not_number":
        return _("a number such as 5 or 4.5 is needed, not “{value}”").format(value=value)
    if code == "out_of_range":
        return _("the value “{value}” is out of range").format(value=value)
    if code == "bad_multiple" and option == "frames":
        try:
            nearest = limits.nearest_valid_frames(int(error.value))
        except ValueError:
            return _("this model does not take such a number of frames")
        return _("this model does not take “{value}” frames; the nearest that fits is {n}").format(
            value=value, n=nearest
        )
    if code == "bad_multiple":
        return _("the sides “{value}” must be multiples of {side}").format(
            value=value, side=limits.side_multiple
        )
    if code == "bad_size":
        return _("a size “{value}” is written as 832x480 (width x height)").format(value=value)
    if code == "too_many_pixels":
        return _("the size “{value}” has too many pixels").format(value=value)
    if code == "unclosed_quote":
        return _("a quote is opened but never closed")
    if code == "duplicate":
        return _("given twice")
    if code == "empty_prompt":
        return _("empty: describe in words what the video should show")
    if code == "too_long" and error.value.isdigit():
        n = int(error.value)
        return ngettext("too long ({n} character)", "too long ({n} characters)", n).format(n=n)
    if code == "too_long":
        return _("too long")
    return _("wrong value")


def option_error(error: OptionError, limits: ModelLimits, max_prompt_chars: int) -> str:
    """The whole answer to a request with a bad option; says that nothing was queued."""
    option = error.option
    if error.code == "unknown_option":
        label = _("Option “{name}”").format(name=shorten(error.value or option, ECHO_LIMIT))
        allowed = _("available: {names}").format(
            names=", ".join(f"--{name}" for name in OPTION_NAMES)
        )
    else:
        label = option_label(option)
        if option in OPTION_NAMES:
            label = _("Option {label}").format(label=label)
        allowed = allowed_range(option, limits, max_prompt_chars)
    lines = [_("❌ {label}: {reason}.").format(label=label, reason=_reason(error, limits))]
    if allowed and error.code != "empty_prompt":
        lines.append(_("Allowed: {allowed}.").format(allowed=allowed))
    lines.append(_("The request was not queued. Options and examples: /help"))
    return "\n".join(lines)


# ---------------------------------------------------------------- limits and access


def limit_active(limit: int) -> str:
    return ngettext(
        "You already have {n} job in progress — that is the limit. You can send a new one "
        "when it finishes.",
        "You already have {n} jobs in progress — that is the limit. You can send a new one "
        "when one of them finishes.",
        limit,
    ).format(n=limit)


def limit_queue(limit: int) -> str:
    return ngettext(
        "The queue is full: it holds {n} job. Try again in a few minutes.",
        "The queue is full: it holds {n} jobs. Try again in a few minutes.",
        limit,
    ).format(n=limit)


def limit_daily(limit: int, frees_in: float) -> str:
    return ngettext(
        "Daily limit reached: at most {n} request a day. It resets at 00:00 UTC, in {wait}.",
        "Daily limit reached: at most {n} requests a day. It resets at 00:00 UTC, in {wait}.",
        limit,
    ).format(n=limit, wait=duration(frees_in))


def videos(cost: float) -> str:
    """An amount of GPU cost in ordinary videos (``bot/services/cost.py``): ``3.2 ordinary
    videos``, ``1 ordinary video``; one decimal, whole amounts without it."""
    rounded = round(max(0.0, cost), 1)
    if rounded == int(rounded):
        n = int(rounded)
        return ngettext("{n} ordinary video", "{n} ordinary videos", n).format(
            n=number(n, digits=0)
        )
    return _("{amount} ordinary videos").format(amount=number(rounded, digits=1))


def request_cost(cost: float) -> str:
    return _("This request costs {cost}.").format(cost=videos(cost))


def limit_job_cost(cost: float, limit: float) -> str:
    return _(
        "💰 This request costs {cost}, over the limit of {limit} per request. Ask for fewer "
        "steps (--steps) or frames (--frames), a smaller size (--size) or a faster quality in "
        "/settings."
    ).format(cost=videos(cost), limit=videos(limit))


def limit_daily_cost(cost: float, limit: float, left: float, frees_in: float) -> str:
    return _(
        "💰 Daily budget reached: {limit} a day, {left} left, and this request costs {cost}. "
        "It renews at 00:00 UTC, in {wait}."
    ).format(cost=videos(cost), limit=videos(limit), left=videos(left), wait=duration(frees_in))


def limit_chat_cost(cost: float, limit: float, left: float, frees_in: float) -> str:
    return _(
        "💰 This chat's daily budget is reached: {limit} a day for everyone here, {left} left, "
        "and this request costs {cost}. It renews at 00:00 UTC, in {wait}."
    ).format(cost=videos(cost), limit=videos(limit), left=videos(left), wait=duration(frees_in))


def banned() -> str:
    return _(
        "⛔ You are blocked in this bot: requests are not accepted until the administrator "
        "lifts the block."
    )


def not_allowed(user_id: int) -> str:
    return _(
        "🔒 This bot works only for users on the administrator's list. Your id: {id} — give it "
        "to the administrator to be added."
    ).format(id=user_id)


def paused_note() -> str:
    return _(
        "⏸ Generation is paused by the administrator right now. The request is saved and will "
        "start when generation resumes."
    )


def too_often() -> str:
    return _("⏳ Too many messages at once: I skip some of them. Wait a little and write again.")


def disk_full() -> str:
    return _(
        "😔 The bot's video storage is full right now, so I cannot take new requests. Try again "
        "later."
    )
