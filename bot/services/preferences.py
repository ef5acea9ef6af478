"""Personal defaults from /settings, and how they become option overrides for a new job.

A user's settings are stored as a JSON object in ``users.settings``; only the keys the user
changed are stored. A missing key means "the operator's default", so when the operator changes
``DEFAULT_*`` in ``.env`` the change reaches every user who never touched that setting.

Explicit options in a request (``--steps 30``) always win over personal settings:
``parsed.overrides.merged_over(personal.overrides)``.

The quality tier travels with the job (``GenerationOptions.quality``); what each tier runs is the
pipeline's (:mod:`pipeline.quality`): the fast tier's steps, guidance and negative prompt come
from :func:`pipeline.quality.plan_tier` (4 steps, guidance 1 and no negative prompt with
``FAST_LORA``/``FAST_TRANSFORMER``, else ``FAST_STEPS`` or half the default steps), unless the
request gives its own. Users who never picked a quality get ``DEFAULT_QUALITY``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.i18n import LOCALES
from pipeline.options import (
    MAX_SEED,
    GenerationDefaults,
    ModelLimits,
    OptionOverrides,
    fit_size,
    random_seed,
)
from pipeline.quality import MagCacheData, TierPlan, TierSupport, plan_tier

if TYPE_CHECKING:
    from bot.config import Settings

# Every setting and its allowed values, in the order the buttons cycle through them.
CHOICES: dict[str, tuple[str, ...]] = {
    "aspect": ("16x9", "9x16", "1x1"),  # "x", not ":" (the callback data separator)
    "length": ("short", "normal"),
    "quality": ("fast", "balanced", "best"),
    "seed": ("random", "fixed"),
    "translate": ("auto", "off"),
    "improve": ("always", "ask", "never"),
    "language": LOCALES,
}
SETTING_NAMES = tuple(CHOICES)
SEED_VALUE_KEY = "seed_value"
IMPROVER_SETTINGS = frozenset({"improve"})
"""Settings shown only when the operator set ``PROMPT_MODEL``."""
DEFAULT_IMPROVE = "ask"
"""A new user sees the improved prompt and picks (friendly: nothing is rendered that they did
not see), until they choose "always" or "never" in /settings."""

DEFAULT_QUALITY = "balanced"
# "short" is about half the default length (then snapped to a frame count the model accepts).
SHORT_LENGTH_FACTOR = 0.5


@dataclass(frozen=True)
class PersonalDefaults:
    """What a user's settings contribute to a new job."""

    overrides: OptionOverrides
    translate: bool = True


def clean(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Only known keys with allowed values; anything else stored or forged is dropped."""
    result: dict[str, Any] = {}
    if not raw:
        return result
    for name, allowed in CHOICES.items():
        value = raw.get(name)
        if isinstance(value, str) and value in allowed:
            result[name] = value
    seed_value = raw.get(SEED_VALUE_KEY)
    if (
        isinstance(seed_value, int)
        and not isinstance(seed_value, bool)
        and 0 <= seed_value <= MAX_SEED
    ):
        result[SEED_VALUE_KEY] = seed_value
    if result.get("seed") == "fixed" and SEED_VALUE_KEY not in result:
        del result["seed"]  # a fixed seed without a value is meaningless: back to the default
    return result


def visible_settings(improver_configured: bool) -> tuple[str, ...]:
    """The rows /settings shows: the improver's only with ``PROMPT_MODEL``."""
    return tuple(n for n in CHOICES if improver_configured or n not in IMPROVER_SETTINGS)


def improve_mode(raw: Mapping[str, Any] | None, improver_configured: bool) -> str:
    """``always`` / ``ask`` / ``never``: how the user's requests use the prompt improver;
    ``never`` without ``PROMPT_MODEL`` or with translation off (the text goes as it is)."""
    chosen = clean(raw)
    if not improver_configured or chosen.get("translate") == "off":
        return "never"
    return str(chosen.get("improve", DEFAULT_IMPROVE))


def aspect_of(width: int, height: int) -> str:
    """The listed aspect closest to ``width``×``height`` (what the operator's default size looks like)."""
    ratio = width / height
    ratios = {"16x9": 16 / 9, "9x16": 9 / 16, "1x1": 1.0}
    return min(ratios, key=lambda name: abs(math.log(ratios[name] / ratio)))


def quality_options(settings: Settings) -> dict[str, Any]:
    """The operator's quality settings as keyword arguments of :func:`to_personal`."""
    return {
        "fast_steps": settings.fast_steps,
        "default_quality": settings.default_quality,
        "distilled": settings.fast_speedups,
    }


def effective(
    raw: Mapping[str, Any] | None,
    defaults: GenerationDefaults,
    *,
    default_quality: str = DEFAULT_QUALITY,
    locale: str = LOCALES[0],
) -> dict[str, Any]:
    """The value of each setting as the user experiences it (their choice, else the default;
    ``locale`` is the language the user reads now, from Telegram's language code)."""
    chosen = clean(raw)
    values: dict[str, Any] = {
        "aspect": aspect_of(defaults.width, defaults.height),
        "length": "normal",
        "quality": default_quality,
        "seed": "random",
        "translate": "auto",
        "improve": DEFAULT_IMPROVE,
        "language": locale,
    }
    values.update({k: v for k, v in chosen.items() if k in CHOICES})
    if SEED_VALUE_KEY in chosen:
        values[SEED_VALUE_KEY] = chosen[SEED_VALUE_KEY]
    return values


def choice_changes(name: str, value: str) -> dict[str, Any]:
    """The keys to store when the user picks ``value`` for ``name`` (for ``UserStore.update_settings``,
    where ``None`` removes a key). Raises ``ValueError`` for anything not offered by a button."""
    if name not in CHOICES or value not in CHOICES[name]:
        raise ValueError(f"unknown setting {name}={value}")
    changes: dict[str, Any] = {name: value}
    if name == "seed":
        changes[SEED_VALUE_KEY] = random_seed() if value == "fixed" else None
    return changes


def size_for(aspect: str, defaults: GenerationDefaults, limits: ModelLimits) -> tuple[int, int]:
    """A size of ``aspect`` with the default pixel budget, on the model's side grid and bounds."""
    if aspect == aspect_of(defaults.width, defaults.height):
        return defaults.width, defaults.height
    aw, ah = (int(x) for x in aspect.split("x"))
    return fit_size(aw, ah, defaults.width * defaults.height, limits)


def frames_for(length: str, defaults: GenerationDefaults, limits: ModelLimits) -> int:
    if length != "short":
        return defaults.frames
    wanted = max(limits.first_valid_frames(), round(defaults.frames * SHORT_LENGTH_FACTOR))
    frames = limits.nearest_valid_frames(wanted)
    return min(frames, defaults.frames)


def steps_for(
    quality: str,
    defaults: GenerationDefaults,
    limits: ModelLimits,
    fast_steps: int | None = None,
    distilled: bool = False,
) -> int:
    support = TierSupport(distilled=distilled, fast_steps=fast_steps)
    return plan_tier(quality, defaults, limits, support).steps


def tier_plans(
    defaults: GenerationDefaults,
    limits: ModelLimits,
    *,
    fast_steps: int | None = None,
    distilled: bool = False,
    cache: MagCacheData | None = None,
) -> dict[str, TierPlan]:
    """What a job of each quality runs where the request names nothing else, in the order of the
    buttons: the steps of :func:`steps_for`, and the MagCache data of the loaded model
    (``ModelInfo.tiers.cache``) for the transformer passes /settings turns into a typical time."""
    support = TierSupport(distilled=distilled, cache=cache, fast_steps=fast_steps)
    return {
        quality: plan_tier(quality, defaults, limits, support) for quality in CHOICES["quality"]
    }


def to_personal(
    raw: Mapping[str, Any] | None,
    defaults: GenerationDefaults,
    limits: ModelLimits,
    *,
    fast_steps: int | None = None,
    default_quality: str = DEFAULT_QUALITY,
    distilled: bool = False,
) -> PersonalDefaults:
    """Overrides for a new job from the stored settings; unset settings stay ``None`` (= default).

    ``default_quality`` (``DEFAULT_QUALITY``) stands for a quality the user never picked;
    ``distilled`` (``FAST_LORA`` or ``FAST_TRANSFORMER`` is set) gives fast jobs the distilled
    sampler's guidance 1 and no negative prompt."""
    chosen = clean(raw)
    width = height = frames = steps = seed = guidance = negative = None
    if "aspect" in chosen:
        width, height = size_for(chosen["aspect"], defaults, limits)
    if "length" in chosen:
        frames = frames_for(chosen["length"], defaults, limits)
    quality = chosen.get("quality", default_quality)
    if quality == "fast":  # best and balanced run the default steps
        tier = plan_tier(quality, defaults, limits, TierSupport(distilled, fast_steps=fast_steps))
        steps = tier.steps
        if distilled:
            guidance, negative = tier.guidance, tier.negative_prompt
    if chosen.get("seed") == "fixed":
        seed = chosen[SEED_VALUE_KEY]
    return PersonalDefaults(
        overrides=OptionOverrides(
            steps=steps,
            seed=seed,
            frames=frames,
            width=width,
            height=height,
            guidance=guidance,
            negative_prompt=negative,
            quality=quality if "quality" in chosen or quality != DEFAULT_QUALITY else None,
        ),
        translate=chosen.get("translate", "auto") != "off",
    )
