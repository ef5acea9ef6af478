"""The CLI's flags default to the bot's environment variables, and ``--version`` says what runs."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from pipeline.__main__ import build_parser, main
from pipeline.errors import ModelLoadError

ROOT = Path(__file__).resolve().parents[2]
ENV_NAMES = ("T2V_MODEL", "TRANSLATOR_MODEL", "TRANSLATOR_DEVICE", "DEVICE", "MEMORY_MODE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("name", "value", "attr"),
    [
        ("MEMORY_MODE", "group_offload", "memory_mode"),
        ("TRANSLATOR_DEVICE", "cuda:1", "translator_device"),
        ("DEVICE", "cpu", "device"),
        ("T2V_MODEL", "org/some-model", "model"),
        ("TRANSLATOR_MODEL", "none", "translator"),
    ],
)
def test_flags_default_to_the_bots_environment_variables(
    name: str, value: str, attr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unset = getattr(build_parser().parse_args(["кот"]), attr)
    monkeypatch.setenv(name, value)
    assert getattr(build_parser().parse_args(["кот"]), attr) == value != unset
    monkeypatch.setenv(name, "")  # empty counts as unset, as in .env files
    assert getattr(build_parser().parse_args(["кот"]), attr) == unset


def test_defaults_without_environment() -> None:
    args = build_parser().parse_args(["кот"])
    assert (args.memory_mode, args.translator_device, args.device) == ("auto", "cpu", "auto")


def test_a_flag_beats_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORY_MODE", "group_offload")
    monkeypatch.setenv("TRANSLATOR_DEVICE", "cuda:1")
    args = build_parser().parse_args(
        ["кот", "--memory-mode", "resident", "--translator-device", "cpu"]
    )
    assert (args.memory_mode, args.translator_device) == ("resident", "cpu")


def test_the_environment_reaches_the_loader(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.text2video import TextToVideo

    seen: dict[str, object] = {}

    def fake_load(config, translator_model=None, translator_device="cpu", **other):
        seen.update(memory_mode=config.memory_mode, translator_device=translator_device)
        raise ModelLoadError("stop here")

    monkeypatch.setattr(TextToVideo, "load", fake_load)
    monkeypatch.setenv("MEMORY_MODE", "model_offload")
    monkeypatch.setenv("TRANSLATOR_DEVICE", "cuda:0")
    assert main(["кот"]) == 3
    assert seen == {"memory_mode": "model_offload", "translator_device": "cuda:0"}
    assert "stop here" in capsys.readouterr().err


def test_a_bad_memory_mode_in_the_environment_fails_before_loading(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.text2video import TextToVideo

    monkeypatch.setattr(TextToVideo, "load", lambda *a, **k: pytest.fail("model loaded"))
    monkeypatch.setenv("MEMORY_MODE", "turbo")
    assert main(["кот"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MEMORY_MODE" in err and "turbo" in err


def test_version_prints_the_package_version_without_a_prompt(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE).group(1)
    assert out.startswith(f"ru-text2video-bot {declared} (")
    assert f"diffusers {version('diffusers')}" in out and out.count("\n") == 1


def test_version_from_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("ru-text2video-bot ")
    assert proc.stderr == ""
