"""/start, /help, the bot's profile description and its command menus."""

from __future__ import annotations

from bot.i18n import _
from pipeline.options import MAX_SEED, GenerationDefaults, ModelLimits


def start() -> str:
    return _(
        "Hi! I turn text into a short video.\n\n"
        "Just write what should happen in the shot, for example:\n"
        "“a cat plays the piano in space, cartoon style”\n\n"
        "I will queue the request, show the progress and send the video as a reply to your "
        "message.\n"
        "Details and options: /help"
    )


def help_text(defaults: GenerationDefaults, limits: ModelLimits, max_prompt_chars: int) -> str:
    """/help: how to ask, an example, and every option with the range the loaded model accepts."""
    size = f"{defaults.width}x{defaults.height}"
    return _(
        "How to use\n\n"
        "Describe the video in an ordinary message, in Russian or in English. The more concrete "
        "(who, doing what, where, what style and light), the better.\n\n"
        "Example:\n"
        "a ginger cat in a spacesuit floats above the Earth, soft light, cinematic\n\n"
        "With options, use /generate (or /gen):\n"
        "/gen sunset over the sea, waves --steps 30 --seed 42 --size {size}\n\n"
        "Options (write --steps 30, —steps 30 or steps=30):\n"
        "--steps N — generation steps, 1–{max_steps} (now {steps}); more is better but slower\n"
        "--seed N — random seed, 0–{max_seed}; the same seed gives the same video\n"
        "--frames N — number of frames, {frames_rule} (now {frames})\n"
        "--fps N — frames per second, 1–{max_fps} (now {fps})\n"
        "--size WxH — size, sides multiples of {side}, at most {max_pixels} pixels (now {size})\n"
        "--guidance F — how closely to follow the text, 0–{max_guidance} (now {guidance})\n"
        '--negative "…" — what must not be in the shot\n\n'
        "A description may have up to {max_chars} characters. Under a finished video there are "
        "the buttons “🔁 Another take” and “⚙️ Settings”.\n\n"
        "Commands:\n"
        "/generate (/gen) — a video with options\n"
        "/queue — your jobs and their place in the queue\n"
        "/cancel [number] — cancel a job\n"
        "/history — the last 10 jobs with a repeat button\n"
        "/settings — format, length, quality, seed, translation, language"
    ).format(
        size=size,
        max_steps=limits.max_steps,
        steps=defaults.steps,
        max_seed=MAX_SEED,
        frames_rule=limits.frames_rule(),
        frames=defaults.frames,
        max_fps=limits.max_fps,
        fps=defaults.fps,
        side=limits.side_multiple,
        max_pixels=limits.max_pixels,
        max_guidance=f"{limits.max_guidance:g}",
        guidance=f"{defaults.guidance:g}",
        max_chars=max_prompt_chars,
    )


def generate_usage() -> str:
    return _(
        "Write a description after the command, for example:\n"
        "/gen a cat plays the piano --steps 30\n\n"
        "All options: /help"
    )


def media_hint() -> str:
    return _(
        "I understand text only: describe in words what video to make, for example "
        "“a dog runs along the beach at sunset”. I do not read pictures, stickers, voice "
        "messages or files."
    )


def unknown_command() -> str:
    return _("I do not know this command. Commands and options: /help")


def description() -> str:
    """The bot's profile text shown in an empty chat (``setMyDescription``, ≤ 512 characters)."""
    return _(
        "I turn a sentence into a short video, rendered by an open text-to-video model on the "
        "owner's GPU. Write what should happen in the shot, in Russian or English, and get an "
        "MP4 back."
    )


def short_description() -> str:
    """``setMyShortDescription`` (profile page, ≤ 120 characters)."""
    return _("Text → short video. Write what should happen in the shot.")


def user_commands() -> list[tuple[str, str]]:
    return [
        ("start", _("Start and an example")),
        ("help", _("How to use it, options")),
        ("generate", _("Make a video: /generate text")),
        ("queue", _("My jobs and their place in the queue")),
        ("cancel", _("Cancel a job: /cancel [number]")),
        ("history", _("The last 10 jobs")),
        ("settings", _("Default settings and language")),
    ]


def group_commands() -> list[tuple[str, str]]:
    """In groups the bot answers only these (and mentions)."""
    return [
        ("generate", _("Make a video: /generate text")),
        ("gen", _("Same as /generate")),
    ]


def admin_commands() -> list[tuple[str, str]]:
    return [
        ("stats", _("Statistics and a chart")),
        ("ban", _("Ban: /ban id")),
        ("unban", _("Unban: /unban id")),
        ("pause", _("Pause generation")),
        ("resume", _("Resume generation")),
    ]
