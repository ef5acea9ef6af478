"""The options model shared by the CLI and the bot, and the one parser for the `/generate` syntax.

A request is text plus optional overrides (`--steps 30`, `—steps 30` as phones write it, `steps=30`,
`--negative "…"`). Parsing only checks syntax and types; :func:`resolve_options` then fills the
model's defaults and checks every value against the loaded model's constraints and the operator's
bounds. Both raise :class:`OptionError`, which names the option, the reason and the allowed range,
with a machine-readable ``code`` so the bot can word it in Russian.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

MAX_SEED = 2**32 - 1

# Canonical option names, with the aliases a person may type (Latin and Russian).
OPTION_ALIASES: dict[str, str] = {
    "steps": "steps",
    "step": "steps",
    "шаги": "steps",
    "seed": "seed",
    "сид": "seed",
    "frames": "frames",
    "frame": "frames",
    "кадры": "frames",
    "fps": "fps",
    "size": "size",
    "размер": "size",
    "guidance": "guidance",
    "cfg": "guidance",
    "negative": "negative",
    "neg": "negative",
    "негатив": "negative",
}
OPTION_NAMES = ("steps", "seed", "frames", "fps", "size", "guidance", "negative")

QUALITIES = ("best", "balanced", "fast")
"""Quality tiers, slowest first (what each runs: :mod:`pipeline.quality`)."""
DEFAULT_QUALITY = "balanced"
"""The tier of a request that names none (``DEFAULT_QUALITY`` in the operator's settings)."""

_DASHES = "-‐‑‒–—―−"  # ASCII hyphen and every dash a phone keyboard may substitute for "--"
_QUOTES = {'"': '"', "«": "»", "“": "”", "„": "“", "'": "'"}
_SIZE_RE = re.compile(r"^\s*(\d{1,5})\s*[xх×*]\s*(\d{1,5})\s*$", re.IGNORECASE)
_SPACED_SIZE_RE = re.compile(r"\d{1,5}\s*[xх×*]\s*\d{1,5}(?=\s|$)", re.IGNORECASE)
_TOKEN_RE = re.compile(r"\S+")


class OptionError(ValueError):
    """A request option is malformed or out of bounds; nothing may be generated from it.

    ``code`` is one of: ``unknown_option``, ``missing_value``, ``not_integer``, ``not_number``,
    ``out_of_range``, ``bad_multiple``, ``bad_size``, ``too_many_pixels``, ``unclosed_quote``,
    ``duplicate``, ``empty_prompt``, ``too_long``.
    """

    def __init__(
        self, code: str, option: str, reason: str, allowed: str | None = None, value: str = ""
    ):
        self.code = code
        self.option = option
        self.reason = reason
        self.allowed = allowed
        self.value = value
        text = f"{option}: {reason}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


@dataclass(frozen=True)
class OptionOverrides:
    """What a person asked for explicitly; ``None`` means "use the default"."""

    steps: int | None = None
    seed: int | None = None
    frames: int | None = None
    fps: int | None = None
    width: int | None = None
    height: int | None = None
    guidance: float | None = None
    negative_prompt: str | None = None
    quality: str | None = None

    def merged_over(self, base: OptionOverrides) -> OptionOverrides:
        """These overrides on top of ``base`` (e.g. explicit options over personal defaults)."""
        values = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(base, name)
            for name in self.__dataclass_fields__
        }
        return OptionOverrides(**values)


@dataclass(frozen=True)
class ParsedRequest:
    prompt: str
    overrides: OptionOverrides = field(default_factory=OptionOverrides)


@dataclass(frozen=True)
class GenerationDefaults:
    """What a request gets when it names nothing: the model's own defaults, then the operator's."""

    steps: int
    frames: int
    fps: int
    width: int
    height: int
    guidance: float
    negative_prompt: str = ""


@dataclass(frozen=True)
class ModelLimits:
    """Constraints of the loaded model and the operator's upper bounds.

    Valid frame counts are ``frame_multiple * k + frame_remainder`` (Wan: 4k+1, LTX: 8k+1);
    sides must be multiples of ``side_multiple``.
    """

    max_steps: int = 100
    min_frames: int = 1
    max_frames: int = 121
    frame_multiple: int = 1
    frame_remainder: int = 0
    side_multiple: int = 16
    min_side: int = 64
    max_side: int = 2048
    max_pixels: int = 1280 * 720
    max_fps: int = 60
    max_guidance: float = 20.0
    max_negative_chars: int = 1000

    def valid_frames(self, frames: int) -> bool:
        return frames % self.frame_multiple == self.frame_remainder % self.frame_multiple

    def nearest_valid_frames(self, frames: int) -> int:
        m, r = self.frame_multiple, self.frame_remainder % self.frame_multiple
        lo = max(self.first_valid_frames(), ((frames - r) // m) * m + r)
        hi = lo + m
        best = lo if frames - lo <= hi - frames else hi
        return min(best, self.last_valid_frames())

    def first_valid_frames(self) -> int:
        m, r = self.frame_multiple, self.frame_remainder % self.frame_multiple
        k = max(0, math.ceil((self.min_frames - r) / m))
        return k * m + r

    def last_valid_frames(self) -> int:
        m, r = self.frame_multiple, self.frame_remainder % self.frame_multiple
        return ((self.max_frames - r) // m) * m + r

    def frames_rule(self) -> str:
        lo, hi = self.first_valid_frames(), self.last_valid_frames()
        if self.frame_multiple == 1:
            return f"{lo}–{hi}"
        r = self.frame_remainder % self.frame_multiple
        return f"{lo}–{hi}, {self.frame_multiple}k+{r}"


@dataclass(frozen=True)
class GenerationOptions:
    """Everything one generation needs, fully resolved and validated."""

    prompt: str
    negative_prompt: str
    steps: int
    seed: int
    frames: int
    fps: int
    width: int
    height: int
    guidance: float
    quality: str = DEFAULT_QUALITY
    """The tier: ``best``, ``balanced`` (step cache) or ``fast`` (distilled weights), see
    :mod:`pipeline.quality`. Steps, guidance and negative prompt above are already the tier's."""

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def with_seed(self, seed: int) -> GenerationOptions:
        return replace(self, seed=seed)

    def to_overrides(self) -> OptionOverrides:
        return OptionOverrides(
            steps=self.steps,
            seed=self.seed,
            frames=self.frames,
            fps=self.fps,
            width=self.width,
            height=self.height,
            guidance=self.guidance,
            negative_prompt=self.negative_prompt,
            quality=self.quality,
        )


def random_seed() -> int:
    return random.SystemRandom().randint(0, MAX_SEED)


# ---------------------------------------------------------------- parsing


def _option_name(token: str) -> tuple[str | None, str | None, bool]:
    """Split a token into (option name, inline value, had a dash prefix); name is None for prompt words."""
    stripped = token.lstrip(_DASHES)
    dashed = stripped != token
    name, sep, value = stripped.partition("=")
    key = name.lower()
    if dashed:
        if not name or not re.fullmatch(r"[\wа-яё]+", key):
            return None, None, False  # "—", "-5", "--" alone: prose, not an option
        if key.isdigit():
            return None, None, False
        return key, (value if sep else None), True
    if sep and key in OPTION_ALIASES:
        return key, value, False
    return None, None, False


def _read_quoted(text: str, start: int) -> tuple[str, int] | None:
    """If ``text[start]`` opens a quote, return (inner text, index after the closing quote)."""
    opener = text[start]
    closer = _QUOTES.get(opener)
    if closer is None:
        return None
    end = text.find(closer, start + 1)
    if end < 0:
        raise OptionError(
            "unclosed_quote", "negative", "the quote is never closed", value=text[start:]
        )
    return text[start + 1 : end], end + 1


def _parse_int(option: str, raw: str) -> int:
    value = raw.strip()
    if not re.fullmatch(r"[+-]?\d{1,12}", value):
        raise OptionError("not_integer", option, "must be a whole number", value=raw)
    return int(value)


def _parse_float(option: str, raw: str) -> float:
    value = raw.strip().replace(",", ".")
    if not re.fullmatch(r"[+-]?(\d{1,6}(\.\d{0,6})?|\.\d{1,6})", value):
        raise OptionError("not_number", option, "must be a number such as 5 or 4.5", value=raw)
    return float(value)


def _parse_size(raw: str) -> tuple[int, int]:
    match = _SIZE_RE.match(raw)
    if not match:
        raise OptionError("bad_size", "size", "must look like 832x480 (width x height)", value=raw)
    return int(match.group(1)), int(match.group(2))


def parse_request(text: str) -> ParsedRequest:
    """Split request text into the prompt and typed option overrides.

    Options may stand anywhere; the words that are not options form the prompt. A value may be
    written ``--name value``, ``--name=value`` or ``name=value``; ``--negative`` takes a quoted
    string or every word up to the next option.

    NUL characters are dropped first: they never describe anything, and PostgreSQL text
    columns cannot hold them (the job's insert would fail there, not on SQLite).
    """
    text = text.replace("\x00", "")
    values: dict[str, str] = {}
    prompt_parts: list[str] = []
    pos = 0
    pending: str | None = None  # option waiting for its value
    negative_words: list[str] | None = None

    def finish_negative() -> None:
        nonlocal negative_words
        if negative_words is not None:
            if not negative_words:
                raise OptionError("missing_value", "negative", "needs a value", '"text"')
            values["negative"] = " ".join(negative_words)
            negative_words = None

    def store(name: str, alias: str, value: str) -> None:
        if name in values:
            raise OptionError("duplicate", name, "is given twice", value=alias)
        values[name] = value

    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        if pending == "negative" and text[pos] in _QUOTES:
            inner, pos = _read_quoted(text, pos)  # type: ignore[misc]
            store("negative", "negative", inner)
            pending = None
            continue
        if pending == "size":
            spaced = _SPACED_SIZE_RE.match(text, pos)  # "832 x 480" as a phone may type it
            if spaced:
                store("size", "size", spaced.group(0))
                pos, pending = spaced.end(), None
                continue
        match = _TOKEN_RE.match(text, pos)
        assert match is not None
        token = match.group(0)
        pos = match.end()
        alias, inline, dashed = _option_name(token)
        if alias is not None:
            name = OPTION_ALIASES.get(alias)
            if name is None:
                raise OptionError(
                    "unknown_option",
                    alias,
                    "is not an option",
                    ", ".join(f"--{n}" for n in OPTION_NAMES),
                    value=token,
                )
            if pending is not None:
                raise OptionError("missing_value", pending, "needs a value")
            finish_negative()
            if inline is not None and inline != "":
                if name == "negative" and inline[0] in _QUOTES:
                    start = match.start() + token.index("=") + 1
                    inner, pos = _read_quoted(text, start)  # type: ignore[misc]
                    store(name, alias, inner)
                elif name == "negative":
                    # like `--negative word word`: every word up to the next option
                    if "negative" in values:
                        raise OptionError("duplicate", "negative", "is given twice", value=alias)
                    negative_words = [inline]
                else:
                    store(name, alias, inline)
                continue
            if inline == "" and not dashed:
                raise OptionError("missing_value", name, "needs a value")
            pending = name
            continue
        if pending == "negative":
            pending = None
            if "negative" in values:
                raise OptionError("duplicate", "negative", "is given twice")
            negative_words = [token]
            continue
        if negative_words is not None:
            negative_words.append(token)
            continue
        if pending is not None:
            store(pending, pending, token)
            pending = None
            continue
        prompt_parts.append(token)

    if pending is not None:
        raise OptionError("missing_value", pending, "needs a value")
    finish_negative()

    return ParsedRequest(prompt=" ".join(prompt_parts), overrides=overrides_from_values(values))


def overrides_from_values(values: Mapping[str, str]) -> OptionOverrides:
    """Type raw option values keyed by name or alias (``{"steps": "30", "size": "832x480"}``).

    The one place option values are typed: :func:`parse_request` and the CLI's flags both go
    through it, so they accept and reject exactly the same values.
    """
    overrides: dict[str, object] = {}
    for alias, raw in values.items():
        name = OPTION_ALIASES.get(alias.lower())
        if name is None:
            raise OptionError(
                "unknown_option", alias, "is not an option",
                ", ".join(f"--{n}" for n in OPTION_NAMES), value=alias,
            )  # fmt: skip
        if name in ("steps", "seed", "frames", "fps"):
            overrides[name] = _parse_int(name, raw)
        elif name == "guidance":
            overrides[name] = _parse_float(name, raw)
        elif name == "size":
            overrides["width"], overrides["height"] = _parse_size(raw)
        elif name == "negative":
            overrides["negative_prompt"] = raw.strip()
    return OptionOverrides(**overrides)


# ---------------------------------------------------------------- validation


def _number(x: float) -> str:
    """``4294967295`` rather than ``4.29497e+09``; ``4.5`` stays ``4.5``."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _check_range(option: str, value: float, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise OptionError(
            "out_of_range", option, "is out of range", f"{_number(lo)}–{_number(hi)}", str(value)
        )


_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp"}  # controls, zero-width/bidi format marks, spaces


def _visible(text: str) -> bool:
    """Whether ``text`` holds a character a person can see (str.strip keeps U+200B, U+FEFF…)."""
    return any(unicodedata.category(char) not in _INVISIBLE for char in text)


def resolve_options(
    prompt: str,
    overrides: OptionOverrides,
    defaults: GenerationDefaults,
    limits: ModelLimits,
    *,
    max_prompt_chars: int = 1000,
) -> GenerationOptions:
    """Fill defaults, pick a random seed if none was given, and validate against ``limits``."""
    prompt = prompt.strip()
    if not _visible(prompt):  # also "\u200b\u200b" or a lone BOM/RTL mark: nothing to draw
        raise OptionError("empty_prompt", "prompt", "is empty: describe the video in words")
    if len(prompt) > max_prompt_chars:
        raise OptionError(
            "too_long",
            "prompt",
            "is too long",
            f"up to {max_prompt_chars} characters",
            str(len(prompt)),
        )

    def pick(name: str):
        value = getattr(overrides, name)
        return getattr(defaults, name) if value is None else value

    steps, frames, fps = pick("steps"), pick("frames"), pick("fps")
    width, height, guidance = pick("width"), pick("height"), pick("guidance")
    negative = overrides.negative_prompt
    if negative is None:
        negative = defaults.negative_prompt
    seed = overrides.seed if overrides.seed is not None else random_seed()
    quality = overrides.quality or DEFAULT_QUALITY
    if quality not in QUALITIES:
        raise OptionError(
            "out_of_range", "quality", "is not a quality tier", ", ".join(QUALITIES), quality
        )

    _check_range("steps", steps, 1, limits.max_steps)
    _check_range("seed", seed, 0, MAX_SEED)
    lo, hi = limits.first_valid_frames(), limits.last_valid_frames()
    _check_range("frames", frames, lo, hi)
    if not limits.valid_frames(frames):
        raise OptionError(
            "bad_multiple",
            "frames",
            f"this model needs {limits.frame_multiple}k+{limits.frame_remainder % limits.frame_multiple} frames"
            f" (nearest: {limits.nearest_valid_frames(frames)})",
            limits.frames_rule(),
            str(frames),
        )
    _check_range("fps", fps, 1, limits.max_fps)
    for side_name, side in (("width", width), ("height", height)):
        if not (limits.min_side <= side <= limits.max_side):
            raise OptionError(
                "out_of_range", "size", f"{side_name} is out of range",
                f"{limits.min_side}–{limits.max_side}", f"{width}x{height}",
            )  # fmt: skip
        if side % limits.side_multiple:
            raise OptionError(
                "bad_multiple", "size", f"{side_name} must be a multiple of {limits.side_multiple}",
                f"multiples of {limits.side_multiple}", f"{width}x{height}",
            )  # fmt: skip
    if width * height > limits.max_pixels:
        raise OptionError(
            "too_many_pixels", "size", "has too many pixels",
            f"width × height ≤ {limits.max_pixels}", f"{width}x{height}",
        )  # fmt: skip
    if not math.isfinite(guidance):
        raise OptionError("not_number", "guidance", "must be a number", value=str(guidance))
    _check_range("guidance", guidance, 0, limits.max_guidance)
    if len(negative) > limits.max_negative_chars:
        raise OptionError(
            "too_long", "negative", "is too long", f"up to {limits.max_negative_chars} characters"
        )
    return GenerationOptions(
        prompt=prompt,
        negative_prompt=negative,
        steps=int(steps),
        seed=int(seed),
        frames=int(frames),
        fps=int(fps),
        width=int(width),
        height=int(height),
        guidance=float(guidance),
        quality=quality,
    )


def fit_size(aspect_w: int, aspect_h: int, pixels: int, limits: ModelLimits) -> tuple[int, int]:
    """The largest size of the given aspect with about ``pixels`` pixels that ``limits`` accept."""
    m = limits.side_multiple
    pixels = min(pixels, limits.max_pixels)
    scale = math.sqrt(pixels / (aspect_w * aspect_h))
    width = max(limits.min_side, min(limits.max_side, int(aspect_w * scale) // m * m))
    height = max(limits.min_side, min(limits.max_side, int(aspect_h * scale) // m * m))
    while (
        width * height > limits.max_pixels and width > limits.min_side and height > limits.min_side
    ):
        width, height = width - m, max(limits.min_side, (height * (width - m) // width) // m * m)
    return width, height
