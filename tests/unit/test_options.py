"""The one option parser and the validation against model limits (pure Python, no model)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.options import (
    DEFAULT_QUALITY,
    MAX_SEED,
    GenerationDefaults,
    ModelLimits,
    OptionError,
    OptionOverrides,
    fit_size,
    overrides_from_values,
    parse_request,
    resolve_options,
)

WAN_LIMITS = ModelLimits(
    max_steps=100, max_frames=81, frame_multiple=4, frame_remainder=1, max_pixels=1280 * 720
)
WAN_DEFAULTS = GenerationDefaults(
    steps=50, frames=81, fps=16, width=832, height=480, guidance=5.0, negative_prompt="blurry"
)


@pytest.mark.parametrize(
    ("text", "prompt", "expected"),
    [
        ("кот играет на пианино", "кот играет на пианино", {}),
        ("кот --steps 30", "кот", {"steps": 30}),
        ("кот —steps 30", "кот", {"steps": 30}),  # a phone turns -- into an em dash
        ("кот –steps 30", "кот", {"steps": 30}),  # en dash
        ("кот ——steps 5", "кот", {"steps": 5}),
        ("кот steps=30 seed=5", "кот", {"steps": 30, "seed": 5}),
        ("кот --steps=30", "кот", {"steps": 30}),
        ("кот --Steps 3", "кот", {"steps": 3}),
        ("кот --шаги 12 --сид 7", "кот", {"steps": 12, "seed": 7}),
        ("--steps 4 кот в космосе", "кот в космосе", {"steps": 4}),
        ("кот --size 832x480", "кот", {"width": 832, "height": 480}),
        ("кот --size 832х480", "кот", {"width": 832, "height": 480}),  # Cyrillic х
        ("кот --size 832×480", "кот", {"width": 832, "height": 480}),
        ("кот --size 832 x 480 ночью", "кот ночью", {"width": 832, "height": 480}),
        ("кот --size=640X360", "кот", {"width": 640, "height": 360}),
        ("кот --guidance 4.5", "кот", {"guidance": 4.5}),
        ("кот --guidance 4,5", "кот", {"guidance": 4.5}),
        ("кот --cfg 6", "кот", {"guidance": 6.0}),
        ("кот --frames 49 --fps 8", "кот", {"frames": 49, "fps": 8}),
        (
            'кот --negative "размыто, плохо" --steps 4',
            "кот",
            {"negative_prompt": "размыто, плохо", "steps": 4},
        ),
        ("кот --negative «размыто» ещё", "кот ещё", {"negative_prompt": "размыто"}),
        ("кот --negative “размыто”", "кот", {"negative_prompt": "размыто"}),
        (
            "кот --negative размыто плохо --steps 3",
            "кот",
            {"negative_prompt": "размыто плохо", "steps": 3},
        ),
        (
            "кот --negative=размыто плохо --fps 8",
            "кот",
            {"negative_prompt": "размыто плохо", "fps": 8},
        ),
        ("кот --negative=«a b» --fps 8", "кот", {"negative_prompt": "a b", "fps": 8}),
        ('кот --negative ""', "кот", {"negative_prompt": ""}),
        ("кот – это зверь", "кот – это зверь", {}),  # a dash in prose is not an option
        ("кот — steps 30", "кот — steps 30", {}),
        ("кот -5 градусов", "кот -5 градусов", {}),
        ("e=mc2 кот", "e=mc2 кот", {}),
        ("кот --seed -1", "кот", {"seed": -1}),  # parsed; rejected by resolve_options
    ],
)
def test_parse_valid_forms(text: str, prompt: str, expected: dict) -> None:
    parsed = parse_request(text)
    assert parsed.prompt == prompt
    assert parsed.overrides == OptionOverrides(**expected)


@pytest.mark.parametrize(
    ("text", "code", "option"),
    [
        ("кот --steps", "missing_value", "steps"),
        ("кот --negative", "missing_value", "negative"),
        ("кот steps=", "missing_value", "steps"),
        ("кот --steps --seed 3", "missing_value", "steps"),
        ("кот --negative —steps 3", "missing_value", "negative"),
        ("кот --bogus 3", "unknown_option", "bogus"),
        ("кот —степс 3", "unknown_option", "степс"),
        ("кот --steps abc", "not_integer", "steps"),
        ("кот --steps 2.5", "not_integer", "steps"),
        ("кот --seed 1e5", "not_integer", "seed"),
        ("кот --guidance much", "not_number", "guidance"),
        ("кот --guidance nan", "not_number", "guidance"),
        ("кот --size 832", "bad_size", "size"),
        ("кот --size 832x480x3", "bad_size", "size"),
        ("кот --size big", "bad_size", "size"),
        ('кот --negative "unclosed', "unclosed_quote", "negative"),
        ("кот --negative «unclosed", "unclosed_quote", "negative"),
        ("кот --steps 3 steps=4", "duplicate", "steps"),
        ('кот --neg "a" --negative "b"', "duplicate", "negative"),
        ("кот --negative=a --negative b", "duplicate", "negative"),
    ],
)
def test_parse_invalid_forms(text: str, code: str, option: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_request(text)
    assert (info.value.code, info.value.option) == (code, option)
    assert option in str(info.value)


def test_unknown_option_lists_the_allowed_ones() -> None:
    with pytest.raises(OptionError) as info:
        parse_request("кот --bogus 3")
    assert "--steps" in (info.value.allowed or "")


def test_nul_characters_are_dropped() -> None:
    """PostgreSQL text cannot hold NUL: a request with one must not fail the job's insert."""
    parsed = parse_request("кот\x00.mp4 --negative раз\x00мыто")
    assert parsed.prompt == "кот.mp4"
    assert parsed.overrides.negative_prompt == "размыто"


@given(st.text(alphabet="абвгд xyz.,!?", max_size=60))
def test_plain_prose_is_all_prompt(words: str) -> None:
    assert parse_request(words).prompt == " ".join(words.split())


def test_overrides_from_values_types_like_the_parser() -> None:
    assert overrides_from_values({"steps": "30", "size": "832х480", "neg": " blurry "}) == (
        OptionOverrides(steps=30, width=832, height=480, negative_prompt="blurry")
    )
    with pytest.raises(OptionError) as info:
        overrides_from_values({"frames": "many"})
    assert (info.value.code, info.value.option) == ("not_integer", "frames")
    with pytest.raises(OptionError) as info:
        overrides_from_values({"speed": "1"})
    assert info.value.code == "unknown_option"


def test_resolve_fills_defaults_and_a_random_seed() -> None:
    options = resolve_options("кот", OptionOverrides(), WAN_DEFAULTS, WAN_LIMITS)
    assert (options.steps, options.frames, options.fps, options.size) == (50, 81, 16, "832x480")
    assert options.negative_prompt == "blurry"
    assert 0 <= options.seed <= MAX_SEED
    explicit = resolve_options(
        "кот", OptionOverrides(seed=42, negative_prompt=""), WAN_DEFAULTS, WAN_LIMITS
    )
    assert explicit.seed == 42
    assert explicit.negative_prompt == ""


def test_quality_is_resolved_and_checked() -> None:
    plain = resolve_options("кот", OptionOverrides(), WAN_DEFAULTS, WAN_LIMITS)
    assert plain.quality == DEFAULT_QUALITY == "balanced"
    fast = resolve_options("кот", OptionOverrides(quality="fast"), WAN_DEFAULTS, WAN_LIMITS)
    assert fast.quality == "fast" and fast.to_overrides().quality == "fast"
    assert fast.with_seed(3).quality == "fast"  # a repeat keeps the tier
    with pytest.raises(OptionError) as info:
        resolve_options("кот", OptionOverrides(quality="turbo"), WAN_DEFAULTS, WAN_LIMITS)
    assert info.value.option == "quality" and "best, balanced, fast" in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "code", "option"),
    [
        (OptionOverrides(steps=0), "out_of_range", "steps"),
        (OptionOverrides(steps=500), "out_of_range", "steps"),
        (OptionOverrides(seed=-1), "out_of_range", "seed"),
        (OptionOverrides(seed=MAX_SEED + 1), "out_of_range", "seed"),
        (OptionOverrides(frames=80), "bad_multiple", "frames"),
        (OptionOverrides(frames=85), "out_of_range", "frames"),
        (OptionOverrides(fps=0), "out_of_range", "fps"),
        (OptionOverrides(fps=61), "out_of_range", "fps"),
        (OptionOverrides(width=830, height=480), "bad_multiple", "size"),
        (OptionOverrides(width=32, height=480), "out_of_range", "size"),
        (OptionOverrides(width=2048, height=2048), "too_many_pixels", "size"),
        (OptionOverrides(guidance=25.0), "out_of_range", "guidance"),
        (OptionOverrides(guidance=float("inf")), "not_number", "guidance"),
        (OptionOverrides(negative_prompt="x" * 1001), "too_long", "negative"),
    ],
)
def test_resolve_rejects_out_of_bounds(overrides: OptionOverrides, code: str, option: str) -> None:
    with pytest.raises(OptionError) as info:
        resolve_options("кот", overrides, WAN_DEFAULTS, WAN_LIMITS)
    assert (info.value.code, info.value.option) == (code, option)


def test_bad_frames_names_the_rule_and_nearest_value() -> None:
    with pytest.raises(OptionError) as info:
        resolve_options("кот", OptionOverrides(frames=50), WAN_DEFAULTS, WAN_LIMITS)
    assert "4k+1" in str(info.value)
    assert "nearest: 49" in info.value.reason


def test_prompt_checks() -> None:
    with pytest.raises(OptionError) as info:
        resolve_options("   ", OptionOverrides(), WAN_DEFAULTS, WAN_LIMITS)
    assert info.value.code == "empty_prompt"
    with pytest.raises(OptionError) as info:
        resolve_options("к" * 1001, OptionOverrides(), WAN_DEFAULTS, WAN_LIMITS)
    assert info.value.code == "too_long"


def test_frames_rules() -> None:
    assert WAN_LIMITS.first_valid_frames() == 1
    assert WAN_LIMITS.last_valid_frames() == 81
    assert WAN_LIMITS.nearest_valid_frames(50) == 49
    assert WAN_LIMITS.nearest_valid_frames(200) == 81
    ltx = ModelLimits(max_frames=161, frame_multiple=8, frame_remainder=1)
    assert ltx.valid_frames(161) and not ltx.valid_frames(160)
    assert ltx.frames_rule() == "1–161, 8k+1"


def test_fit_size_keeps_aspect_within_limits() -> None:
    width, height = fit_size(16, 9, 832 * 480, WAN_LIMITS)
    assert width % 16 == 0 and height % 16 == 0
    assert width * height <= 832 * 480
    assert abs(width / height - 16 / 9) < 0.1
