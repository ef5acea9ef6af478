"""Property tests of the one option parser: any text either parses or raises ``OptionError``.

``parse_request`` and ``resolve_options`` are what stands between a stranger's message and the
GPU, so they are driven with random unicode, option-shaped token soups and hostile numbers
(hypothesis), and every accepted result is checked against the model's bounds.
"""

from __future__ import annotations

import math
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.texts.requests import option_error as option_error_text
from pipeline.options import (
    MAX_SEED,
    GenerationDefaults,
    GenerationOptions,
    ModelLimits,
    OptionError,
    OptionOverrides,
    parse_request,
    resolve_options,
)
from tests.reliability.corpus import BAD_TEXTS, GOOD_TEXTS, request_texts

CODES = {
    "unknown_option",
    "missing_value",
    "not_integer",
    "not_number",
    "out_of_range",
    "bad_multiple",
    "bad_size",
    "too_many_pixels",
    "unclosed_quote",
    "duplicate",
    "empty_prompt",
    "too_long",
}
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
MAX_PROMPT = 1000

WAN_DEFAULTS = GenerationDefaults(steps=50, frames=81, fps=16, width=832, height=480, guidance=5.0)
WAN_LIMITS = ModelLimits(
    max_steps=100,
    max_frames=121,
    frame_multiple=4,
    frame_remainder=1,
    side_multiple=16,
    max_pixels=832 * 480,
)
LTX_LIMITS = ModelLimits(
    max_steps=60, max_frames=161, frame_multiple=8, frame_remainder=1, side_multiple=32
)
PLAIN_LIMITS = ModelLimits()

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_valid(options: GenerationOptions, limits: ModelLimits) -> None:
    """Everything the GPU will see is inside the model's bounds."""
    assert options.prompt.strip() and len(options.prompt) <= MAX_PROMPT
    visible = {"Cc", "Cf", "Zs", "Zl", "Zp"}
    assert any(unicodedata.category(c) not in visible for c in options.prompt), options.prompt
    assert 1 <= options.steps <= limits.max_steps
    assert 0 <= options.seed <= MAX_SEED
    assert limits.first_valid_frames() <= options.frames <= limits.last_valid_frames()
    assert limits.valid_frames(options.frames)
    assert 1 <= options.fps <= limits.max_fps
    for side in (options.width, options.height):
        assert limits.min_side <= side <= limits.max_side
        assert side % limits.side_multiple == 0
    assert options.width * options.height <= limits.max_pixels
    assert math.isfinite(options.guidance) and 0 <= options.guidance <= limits.max_guidance
    assert len(options.negative_prompt) <= limits.max_negative_chars
    for value in (options.steps, options.seed, options.frames, options.fps):
        assert type(value) is int


def check_error(error: OptionError, limits: ModelLimits) -> None:
    assert error.code in CODES, error.code
    text = option_error_text(error, limits, MAX_PROMPT)
    assert CYRILLIC.search(text), text
    assert "None" not in text and "Traceback" not in text, text
    assert len(text) <= 4096


def run_request(text: str, limits: ModelLimits = WAN_LIMITS) -> GenerationOptions | None:
    """parse → resolve as the bot does; only OptionError may escape (and is checked)."""
    try:
        parsed = parse_request(text)
        options = resolve_options(
            parsed.prompt, parsed.overrides, WAN_DEFAULTS, limits, max_prompt_chars=MAX_PROMPT
        )
    except OptionError as error:
        check_error(error, limits)
        return None
    check_valid(options, limits)
    return options


@FAST
@given(request_texts)
def test_parse_request_only_raises_option_error(text: str) -> None:
    try:
        parsed = parse_request(text)
    except OptionError as error:
        check_error(error, WAN_LIMITS)
        return
    assert isinstance(parsed.prompt, str)
    # The prompt is made of the text's own words: nothing invented, nothing from elsewhere
    # (NUL characters, which no database text column may hold, are dropped first).
    for word in parsed.prompt.split():
        assert word in text.replace("\x00", "")


@FAST
@given(request_texts, st.sampled_from([WAN_LIMITS, LTX_LIMITS, PLAIN_LIMITS]))
def test_whole_request_valid_or_option_error(text: str, limits: ModelLimits) -> None:
    run_request(text, limits)


_ints = st.one_of(
    st.none(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**63, -(2**63), MAX_SEED, MAX_SEED + 1]),
)
_floats = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e309, 20.0000001]),
)


@FAST
@given(
    prompt=st.text(max_size=1200),
    steps=_ints,
    seed=_ints,
    frames=_ints,
    fps=_ints,
    width=_ints,
    height=_ints,
    guidance=_floats,
    negative=st.one_of(st.none(), st.text(max_size=1100)),
)
def test_resolve_options_any_overrides(
    prompt: str,
    steps: int | None,
    seed: int | None,
    frames: int | None,
    fps: int | None,
    width: int | None,
    height: int | None,
    guidance: float | None,
    negative: str | None,
) -> None:
    """Overrides from any source (settings JSON, a repeat button, the CLI) are bounded too."""
    overrides = OptionOverrides(steps, seed, frames, fps, width, height, guidance, negative)
    for limits in (WAN_LIMITS, LTX_LIMITS):
        try:
            options = resolve_options(
                prompt, overrides, WAN_DEFAULTS, limits, max_prompt_chars=MAX_PROMPT
            )
        except OptionError as error:
            check_error(error, limits)
            continue
        check_valid(options, limits)


@pytest.mark.parametrize(("name", "text"), BAD_TEXTS, ids=[name for name, _ in BAD_TEXTS])
def test_corpus_through_parser(name: str, text: str) -> None:
    """Each corpus text either fails with a Russian OptionError text or yields valid options."""
    run_request(text)


@pytest.mark.parametrize(("name", "text"), GOOD_TEXTS, ids=[name for name, _ in GOOD_TEXTS])
def test_good_texts_parse(name: str, text: str) -> None:
    body = text.split(maxsplit=1)[1] if text.startswith("/") else text
    assert run_request(body) is not None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("кот --steps", "missing_value"),
        ('кот --negative "x', "unclosed_quote"),
        ("кот --guidance NaN", "not_number"),
        ("кот --guidance inf", "not_number"),
        ("кот --steps 9999999999999", "not_integer"),
        ("кот --steps 99999999999", "out_of_range"),
        ("кот --steps -5", "out_of_range"),
        ("кот --size 99999x99999", "out_of_range"),
        ("кот --frames 10", "bad_multiple"),
        ("кот --foo 1", "unknown_option"),
        ("кот --seed 1 --seed 2", "duplicate"),
        ("--steps 5", "empty_prompt"),
        ("я" * 1001, "too_long"),
    ],
)
def test_specific_codes(text: str, code: str) -> None:
    with pytest.raises(OptionError) as info:
        parsed = parse_request(text)
        resolve_options(
            parsed.prompt,
            parsed.overrides,
            WAN_DEFAULTS,
            WAN_LIMITS,
            max_prompt_chars=MAX_PROMPT,
        )
    assert info.value.code == code
    check_error(info.value, WAN_LIMITS)
