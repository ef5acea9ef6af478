"""The prompt improver (``PROMPT_MODEL``): a tiny random Qwen2 instruct model in its real layout,
loaded through ``PromptImprover.load``. Its text is random, so these tests check the wiring, the
bounds (tokens, time), the output checks on realistic answers put through the seam, and that
every failure falls back to the plain translation."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.errors import ModelLoadError
from pipeline.improve import (
    MAX_OUTPUT_CHARS,
    SYSTEM_PROMPT,
    BadOutput,
    PromptImprover,
    check_output,
    load_improver,
)
from pipeline.text2video import TextToVideo

GOOD = (
    "A ginger cat sits at a black grand piano in a dim jazz club and presses the keys with its "
    "paws, its tail swaying. Warm spotlight from above, smoke in the air, slow dolly-in from a "
    "low angle, shallow depth of field, cinematic, photorealistic."
)


def translate(text: str) -> str:
    return "a cat plays the piano"


@pytest.fixture(scope="module")
def improver(tiny_qwen_dir: Path) -> PromptImprover:
    return PromptImprover.load(str(tiny_qwen_dir), "cpu", max_new_tokens=8, timeout=30)


@pytest.mark.parametrize(
    "raw",
    [
        GOOD,
        f'"{GOOD}"',
        f"«{GOOD}»",
        f"Prompt: {GOOD}",
        f"**Improved prompt:** {GOOD}",
        f"Sure! Here is the improved prompt:\n\n{GOOD}",
        GOOD.replace(". ", ".\n"),
        f"  {GOOD}\n",
    ],
)
def test_check_output_cleans_a_good_answer(raw: str) -> None:
    assert check_output(raw) == GOOD


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ('  ""  ', "empty"),
        ("Prompt:", "empty"),
        ("Рыжий кот играет на рояле в джаз-клубе, тёплый свет, кинематографично.", "not_english"),
        (GOOD + " Кот.", "not_english"),
        ("A cat.", "too_short"),
        (SYSTEM_PROMPT, "echo"),
        ("Write one English paragraph of 60 to 120 words: a cat at a piano.", "echo"),
        ("A cat plays the piano " * 80, "too_long"),  # no sentence to cut at
        ("A cat \x00 plays the piano in a club", "garbled"),
    ],
)
def test_check_output_refuses_a_bad_answer(raw: str, reason: str) -> None:
    with pytest.raises(BadOutput) as caught:
        check_output(raw)
    assert caught.value.reason == reason


def test_an_overlong_answer_is_cut_at_its_last_whole_sentence() -> None:
    raw = " ".join([GOOD] * 8)
    text = check_output(raw)
    assert len(text) <= MAX_OUTPUT_CHARS and raw.startswith(text) and text.endswith(".")
    assert len(text) > MAX_OUTPUT_CHARS - len(GOOD)  # only the sentences over the cap went


def test_loads_through_the_chat_template(improver: PromptImprover) -> None:
    ids = improver.tokenizer.apply_chat_template(
        improver.messages("кот играет на пианино"), add_generation_prompt=True, tokenize=False
    )
    assert SYSTEM_PROMPT in ids and ids.rstrip().endswith("<|im_start|>assistant")
    assert improver.device == "cpu"


def test_generation_stops_at_max_new_tokens(improver: PromptImprover) -> None:
    improver.generate("кот играет на пианино")
    assert improver.last_new_tokens == 8  # the tiny model never says <|im_end|> this early
    assert improver.last_stop == "length"


def test_the_timeout_stops_generation_and_the_translation_is_used(
    tiny_qwen_dir: Path,
) -> None:
    slow = PromptImprover.load(str(tiny_qwen_dir), "cpu", max_new_tokens=200, timeout=0.0)
    result = slow.improve("кот играет на пианино", translate)
    assert slow.last_stop == "time" and slow.last_new_tokens < 200
    assert (result.text, result.improved, result.reason) == (translate(""), False, "timeout")


def test_random_text_is_refused_and_the_translation_is_used(improver: PromptImprover) -> None:
    result = improver.improve("кот играет на пианино", translate)
    assert not result.improved and result.text == "a cat plays the piano"


def test_a_good_answer_is_used(improver: PromptImprover, monkeypatch) -> None:
    monkeypatch.setattr(improver, "raw_output", lambda request: f"Prompt: «{GOOD}»")
    result = improver.improve("кот играет на пианино", translate)
    assert (result.text, result.improved, result.reason) == (GOOD, True, "ok")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [("Кот играет на пианино в джаз-клубе.", "not_english"), (SYSTEM_PROMPT, "echo")],
)
def test_a_bad_answer_falls_back(
    improver: PromptImprover, monkeypatch, answer: str, reason: str
) -> None:
    monkeypatch.setattr(improver, "raw_output", lambda request: answer)
    result = improver.improve("кот играет на пианино", translate)
    assert (result.text, result.improved, result.reason) == ("a cat plays the piano", False, reason)


def test_an_error_falls_back(improver: PromptImprover, monkeypatch) -> None:
    def broken(request: str) -> str:
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(improver, "raw_output", broken)
    result = improver.improve("кот", translate)
    assert (result.improved, result.reason) == (False, "error")


def test_load_errors_are_one_line(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    assert load_improver(None) is None and load_improver(" none ") is None
    with pytest.raises(ModelLoadError, match="not found"):
        PromptImprover.load(str(tmp_path / "missing"), "cpu")
    broken = tmp_path / "no-weights"
    shutil.copytree(tiny_qwen_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="cannot load prompt model") as caught:
        PromptImprover.load(str(broken), "cpu")
    assert "\n" not in str(caught.value)
    plain = tmp_path / "no-template"
    shutil.copytree(tiny_qwen_dir, plain)
    (plain / "chat_template.jinja").unlink()
    with pytest.raises(ModelLoadError, match="chat template"):
        PromptImprover.load(str(plain), "cpu")


def _t2v(improver: PromptImprover | None) -> TextToVideo:
    generator = SimpleNamespace(preset=SimpleNamespace(reads_russian=False))
    translator = SimpleNamespace(translate=translate)
    return TextToVideo(generator, translator, improver)  # type: ignore[arg-type]


def test_text_to_video_improves_or_translates(improver: PromptImprover, monkeypatch) -> None:
    assert not _t2v(None).can_improve
    plain = _t2v(None).improve_prompt("кот")
    assert (plain.text, plain.improved, plain.reason) == (
        "a cat plays the piano",
        False,
        "no_model",
    )
    t2v = _t2v(improver)
    monkeypatch.setattr(improver, "raw_output", lambda request: GOOD)
    assert t2v.can_improve and t2v.improve_prompt("кот").text == GOOD


def test_cli_improve(tiny_wan_dir: Path, tiny_qwen_dir: Path, tmp_path: Path, monkeypatch, capsys):
    from pipeline.__main__ import main

    monkeypatch.setattr(PromptImprover, "generate", lambda self, request: GOOD)
    monkeypatch.setenv("PROMPT_MODEL", str(tiny_qwen_dir))
    monkeypatch.setenv("PROMPT_DEVICE", "cpu")
    out = tmp_path / "cat.mp4"
    args = ["кот играет на пианино", "-o", str(out), "--model", str(tiny_wan_dir)]
    small = ["--translator", "none", "--device", "cpu", "--size", "64x64", "--frames", "9"]
    assert main([*args, *small, "--steps", "2", "--improve", "-q"]) == 0
    assert f"prompt: {GOOD}" in capsys.readouterr().out.splitlines()
    assert out.exists()


def test_cli_improve_needs_a_model(monkeypatch, capsys) -> None:
    from pipeline.__main__ import main

    monkeypatch.delenv("PROMPT_MODEL", raising=False)
    assert main(["кот", "--improve"]) == 2
    assert "--improve needs a prompt model" in capsys.readouterr().err


def test_text_to_video_loads_the_improver_and_survives_a_broken_one(
    tiny_wan_dir: Path, tiny_qwen_dir: Path, tmp_path: Path, caplog
) -> None:
    from pipeline.generator import GeneratorConfig

    config = GeneratorConfig(model=str(tiny_wan_dir), device="cpu")
    t2v = TextToVideo.load(config, translator_model="none", prompt_model=str(tiny_qwen_dir),
                           prompt_max_tokens=20, prompt_timeout=5)  # fmt: skip
    assert t2v.can_improve and t2v.improver is not None
    assert (t2v.improver.device, t2v.improver.max_new_tokens, t2v.improver.timeout) == (
        "cpu",
        20,
        5,
    )
    broken = TextToVideo.load(config, translator_model="none", prompt_model=str(tmp_path / "gone"))
    assert not broken.can_improve  # the bot runs on, translating plainly
    assert "prompt improver off" in caplog.text and "not found" in caplog.text
