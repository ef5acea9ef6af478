"""/settings: the labels of each personal default, its values and the summary text."""

from __future__ import annotations

from babel import Locale

from bot.i18n import _, duration, ngettext, number


def value_label(name: str, value: str) -> str:
    """The button text of one value of one setting."""
    if name == "language":
        # Each language is named in itself, so anyone can find their own (CLDR names).
        own = Locale.parse(value).get_display_name(value) or value
        return own[:1].upper() + own[1:]
    labels = {
        "aspect": {"16x9": "16:9", "9x16": "9:16", "1x1": "1:1"},
        "length": {"short": _("short"), "normal": _("normal")},
        "quality": {"fast": _("fast"), "balanced": _("balanced"), "best": _("best")},
        "seed": {"random": _("random"), "fixed": _("fixed")},
        "translate": {"auto": _("auto"), "off": _("off")},
        "improve": {"always": _("always"), "ask": _("ask"), "never": _("never")},
    }
    return labels.get(name, {}).get(value, value)


def button(name: str, value: str, selected: bool) -> str:
    label = value_label(name, value)
    return f"✅ {label}" if selected else label


def reset_button() -> str:
    return _("↩️ Reset everything")


def reset_done() -> str:
    return _("Settings reset: the defaults apply.")


def nothing_to_reset() -> str:
    return _("You have not changed anything: the defaults already apply.")


def saved() -> str:
    return _("Saved")


def unchanged() -> str:
    return _("Already selected")


def only_in_private() -> str:
    return _("Settings are changed in a private chat with the bot: open it and send /settings.")


def summary(
    values: dict,
    *,
    width: int,
    height: int,
    frames: int,
    fps: int,
    steps: int,
    changed: set[str],
    tier_seconds: dict[str, float],
    measured: bool,
    fast_mode: bool = False,
    improver: bool = False,
) -> str:
    """What each setting means now, in the order of the keyboard's rows. ``tier_seconds``: the
    typical time of a video of each quality (``bot/eta.py``), ``measured`` on this bot's own
    recent videos or else the reference estimate. ``improver``: ``PROMPT_MODEL`` is set, so the
    prompt improver's line is shown."""

    def mark(name: str) -> str:
        return "" if name in changed else " " + _("(default)")

    seed_text = value_label("seed", values["seed"])
    if values["seed"] == "fixed" and "seed_value" in values:
        seed_text += f" ({values['seed_value']})"
    translate = (
        _("Russian text is translated into English if the model does not understand it")
        if values["translate"] == "auto"
        else _("the text goes to the model as it is")
    )
    quality = value_label("quality", values["quality"])
    if values["quality"] == "fast" and fast_mode:
        quality += ", " + _("the operator's fast mode")
    frames_text = ngettext("{n} frame", "{n} frames", frames).format(n=frames)
    steps_text = ngettext("{n} step", "{n} steps", steps).format(n=steps)
    seconds = _("{n} s").format(n=number(frames / fps, digits=1))
    quality_line = _("Quality: {value} ({steps}, ≈ {time})").format(
        value=quality, steps=steps_text, time=duration(tier_seconds[values["quality"]])
    )
    lines = [
        _("⚙️ Your settings for new videos:"),
        "• "
        + _("Format: {value} ({size})").format(
            value=value_label("aspect", values["aspect"]), size=f"{width}×{height}"
        )
        + mark("aspect"),
        "• "
        + _("Length: {value} ({frames}, {seconds})").format(
            value=value_label("length", values["length"]), frames=frames_text, seconds=seconds
        )
        + mark("length"),
        "• " + quality_line + mark("quality"),
        "• " + _("Seed: {value}").format(value=seed_text) + mark("seed"),
        "• "
        + _("Translation: {value} — {meaning}").format(
            value=value_label("translate", values["translate"]), meaning=translate
        )
        + mark("translate"),
        *([improve_line(values["improve"]) + mark("improve")] if improver else []),
        "• "
        + _("Language: {value}").format(value=value_label("language", values["language"]))
        + mark("language"),
        "",
        tier_times(tier_seconds, measured),
        "",
        _(
            "The rows of buttons below are in the same order. Options in the request itself "
            "(--steps, --size…) win over the settings."
        ),
    ]
    return "\n".join(lines)


def improve_line(mode: str) -> str:
    """The prompt improver's line: what each mode does."""
    meaning = {
        "always": _("your text is turned into a detailed English prompt before every video"),
        "ask": _("you see the detailed prompt and choose it or your own text"),
        "never": _("the model gets your text as you wrote it (translated if needed)"),
    }[mode]
    return "• " + _("Prompt improver: {value} — {meaning}").format(
        value=value_label("improve", mode), meaning=meaning
    )


def tier_times(tier_seconds: dict[str, float], measured: bool) -> str:
    """One line with the typical time of a video of each quality, and where it comes from."""
    times = ", ".join(
        f"{value_label('quality', quality)} ≈ {duration(seconds)}"
        for quality, seconds in tier_seconds.items()
    )
    if measured:
        return _("⏱ Typical time of a video: {times} (from this bot's recent videos).").format(
            times=times
        )
    return _(
        "⏱ Typical time of a video: {times} (estimated for one H200 GPU until this bot "
        "has made a video)."
    ).format(times=times)
