"""The bad-input corpus: texts a person (or an attacker) may send, and hypothesis strategies.

Shared by the parser property tests and the dispatcher tests, so both see the same inputs.
"""

from __future__ import annotations

from hypothesis import strategies as st

ZWSP = "\u200b"  # zero-width space
ZWNJ = "\u200c"
ZWJ = "\u200d"
BOM = "\ufeff"
RLO = "\u202e"  # right-to-left override
LRM = "\u200e"
RLM = "\u200f"

# (name, text). Every one must get a clear Russian answer and queue nothing invalid.
BAD_TEXTS: list[tuple[str, str]] = [
    ("empty", ""),
    ("space", " "),
    ("whitespace_mix", " \t\n\r \u00a0\u3000"),
    ("newlines_only", "\n\n\n"),
    ("max_len_4096", "я" * 4096),
    ("max_len_4096_ascii", "a" * 4096),
    ("just_over_prompt_limit", "кот " * 251),
    ("emoji_only", "🐱🎬🔥"),
    ("emoji_zwj_family", "👨‍👩‍👧‍👦"),
    ("flag_emoji", "🇷🇺🇺🇦"),
    ("zero_width_only", ZWSP * 10),
    ("zero_width_mixed", f"ко{ZWSP}т на{ZWNJ} луне{ZWJ}"),
    ("bom_prefix", BOM + "кот"),
    ("rtl_override", f"{RLO}кот на луне"),
    ("rtl_hebrew_arabic", "חתול על הירח قطة على القمر"),
    ("lrm_rlm", f"{LRM}кот{RLM}"),
    ("mixed_scripts", "кот cat 猫 γάτα קאַץ"),
    ("combining_marks", "к\u0301о\u0308т\u0336"),
    ("surrogate_like_text", "\\ud800\\udfff"),
    ("control_chars", "кот\x00\x07\x1b[31mкрасный"),
    ("quote_left_open", 'кот --negative "размыто'),
    ("guillemet_left_open", "кот --negative «размыто"),
    ("negative_empty_quotes", 'кот --negative ""'),
    ("option_without_value_end", "кот --steps"),
    ("option_without_value_mid", "кот --steps --seed 5"),
    ("option_eq_empty", "кот steps="),
    ("option_dash_eq_empty", "кот --steps="),
    ("size_without_value", "кот --size"),
    ("negative_without_value", "кот --negative"),
    ("unknown_option", "кот --foo 5"),
    ("unknown_option_cyrillic", "кот —скорость 5"),
    ("duplicate_option", "кот --steps 5 --steps 6"),
    ("huge_steps", "кот --steps 99999999999"),
    ("huge_steps_13_digits", "кот --steps 9999999999999"),
    ("huge_seed", "кот --seed 99999999999"),
    ("huge_frames", "кот --frames 100000"),
    ("huge_fps", "кот --fps 100000"),
    ("huge_size", "кот --size 99999x99999"),
    ("huge_guidance", "кот --guidance 1e309"),
    ("negative_steps", "кот --steps -5"),
    ("negative_seed", "кот --seed -1"),
    ("negative_frames", "кот --frames -9"),
    ("negative_guidance", "кот --guidance -1"),
    ("zero_steps", "кот --steps 0"),
    ("zero_fps", "кот --fps 0"),
    ("zero_size", "кот --size 0x0"),
    ("nan_guidance", "кот --guidance NaN"),
    ("nan_steps", "кот --steps nan"),
    ("inf_guidance", "кот --guidance inf"),
    ("minus_inf_guidance", "кот --guidance -inf"),
    ("float_steps", "кот --steps 2.5"),
    ("hex_steps", "кот --steps 0x10"),
    ("unicode_digits_steps", "кот --steps ٣٠"),
    ("fullwidth_digits", "кот --steps ３０"),
    ("comma_decimal_guidance_bad", "кот --guidance 4,5,6"),
    ("bad_size_format", "кот --size big"),
    ("size_one_side", "кот --size 832"),
    ("size_not_multiple", "кот --size 833x481"),
    ("frames_not_4k1", "кот --frames 10"),
    ("sql_drop", "кот'; DROP TABLE jobs; --"),
    ("sql_union", '" OR 1=1 UNION SELECT * FROM users --'),
    ("sql_in_option", "кот --seed 1;DELETE FROM jobs"),
    ("html_script", "<script>alert(1)</script>"),
    ("html_bold", "<b>кот</b> <i>на</i> <a href='x'>луне</a>"),
    ("html_entities", "&lt;кот&gt; &amp; &#x41;"),
    ("markdown", "*кот* _на_ `луне` [x](http://e)"),
    ("path_traversal", "../../etc/passwd"),
    ("windows_path", "..\\..\\windows\\system32"),
    ("format_string", "%s%s%s %n {0} {prompt!r}"),
    ("only_options", "--steps 5 --seed 3"),
    ("only_dashes", "— — —"),
    ("em_dash_option_ok_no_prompt", "—steps 5"),
    ("unknown_command", "/foo"),
    ("unknown_command_args", "/foobar кот на луне"),
    ("unknown_command_botname", "/foo@t2v_test_bot"),
    ("generate_empty", "/generate"),
    ("generate_spaces", "/generate    "),
    ("gen_empty", "/gen"),
    ("generate_botname_empty", "/generate@t2v_test_bot"),
    ("generate_other_bot", "/generate@other_bot кот"),
    ("generate_bad_option", "/generate кот --steps abc"),
    ("gen_botname_bad_option", "/gen@t2v_test_bot кот --steps -1"),
    ("generate_only_options", "/generate --steps 5"),
    ("generate_unclosed", '/generate кот --negative "x'),
    ("generate_huge", "/generate " + "я" * 4000),
    ("slash_only", "/"),
    ("double_slash", "//generate кот"),
    ("cancel_garbage", "/cancel abc"),
    ("cancel_negative", "/cancel -5"),
    ("cancel_huge", "/cancel 99999999999999999999999"),
    ("cancel_sql", "/cancel 1 OR 1=1"),
    ("ban_non_admin", "/ban 1"),
    ("stats_non_admin", "/stats"),
    ("pause_non_admin", "/pause"),
    ("none_text", "None"),
    ("null_text", "null"),
    ("traceback_text", "Traceback (most recent call last):"),
    ("very_long_word", "ы" * 1200),
    ("many_options", " ".join(f"--steps{i} 1" for i in range(60))),
]

# A few inputs that are valid (must be queued) so the tests also prove the pipe is open.
GOOD_TEXTS: list[tuple[str, str]] = [
    ("plain", "кот на луне"),
    ("generate_options", "/generate кот --steps 2 --seed 5"),
    ("gen_botname", "/gen@t2v_test_bot кот в космосе"),
    ("em_dash", "кот —steps 2"),
    ("eq_syntax", "кот steps=2 seed=1"),
]

# ------------------------------------------------------------------ hypothesis

_FRAGMENTS = [
    "--steps", "—steps", "steps=", "--seed", "--frames", "--fps", "--size", "--guidance",
    "--negative", "neg=", "размер=", "шаги", "--", "—", "-", "=", '"', "«", "»", "“", "”", "„",
    "'", "NaN", "nan", "inf", "-inf", "1e309", "0", "-1", "30", "2.5", "4,5", "832x480", "64х64",
    "99999x99999", "9" * 13, "x", "х", "×", "*", ZWSP, RLO, BOM, "🐱", "👨‍👩‍👧", "кот", "cat",
    "猫", "<b>", "'; DROP TABLE jobs; --", "../../etc/passwd", "/generate", "@video_bot", " ",
    "\n", "\t", "\x00",
]  # fmt: skip

fragments = st.sampled_from(_FRAGMENTS)
"""Pieces of option syntax, numbers and hostile characters."""

request_texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(fragments, st.text(max_size=6)), max_size=25).map(" ".join),
    st.lists(st.one_of(fragments, st.text(max_size=3)), max_size=25).map("".join),
)
"""Raw message texts: random unicode, and option-shaped token soups."""
