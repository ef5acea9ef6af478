"""The CLI: a real run as a subprocess, and every bad option as a one-line error with no generation."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.__main__ import main
from tests.fakes.mp4 import read_mp4

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--size", "64x64", "--frames", "9", "--steps", "2"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    # one torch thread: tiny models gain nothing from more, and a busy CPU makes them crawl
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_cli_writes_a_playable_mp4(
    tmp_path: Path, tiny_wan_dir: Path, tiny_marian_dir: Path
) -> None:
    out = tmp_path / "cat.mp4"
    proc = run_cli(
        "кот играет на пианино в космосе", "-o", str(out), "--model", str(tiny_wan_dir),
        "--translator", str(tiny_marian_dir), "--seed", "5", "--device", "cpu", *SMALL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("prompt: ") and lines[0] != "prompt: кот играет на пианино в космосе"
    assert f"saved: {out}" in proc.stdout and "seed: 5" in lines and "time: " in proc.stdout
    assert "denoise" in proc.stderr and "2/2" in proc.stderr  # the progress bar
    mp4 = read_mp4(out)
    assert (mp4.width, mp4.height) == (64, 64) and mp4.codecs == ["h264", "aac"]
    assert len(mp4.frames) == 9
    assert out.with_suffix(".jpg").exists()


def test_cli_missing_model_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("кот", "-o", str(tmp_path / "x.mp4"), "--model", str(tmp_path / "no-model"))
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def no_generation(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails the test if the video pipeline is ever called."""
    from diffusers import WanPipeline

    calls: list[str] = []

    @functools.wraps(WanPipeline.__call__)  # keeps the signature the presets read defaults from
    def spy(*args, **kwargs):
        calls.append("called")

    monkeypatch.setattr(WanPipeline, "__call__", spy)
    return calls


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["кот", "--steps", "abc"], "steps"),
        (["кот", "--seed", "1.5"], "seed"),
        (["кот", "--size", "big"], "size"),
        (["кот", "--guidance", "x"], "guidance"),
        (["кот --bogus 3"], "bogus"),
        (['кот --negative "open'], "negative"),
        (["кот --steps 3", "--steps", "4"], "steps"),  # in the text and as a flag
        (["кот", "--unknown-flag"], "unknown-flag"),
    ],
)
def test_bad_syntax_fails_before_loading(
    args: list[str], option: str, capsys, monkeypatch, no_generation: list[str]
) -> None:
    from pipeline.text2video import TextToVideo

    monkeypatch.setattr(TextToVideo, "load", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(SystemExit) if args[-1] == "--unknown-flag" else _no_raise() as exit_info:
        code = main(args)
    if exit_info is not None:
        code = exit_info.value.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and option in err
    assert no_generation == []


@pytest.mark.parametrize(
    ("args", "option", "allowed"),
    [
        (["--steps", "500"], "steps", "1–100"),
        (["--frames", "10"], "frames", "4k+1"),
        (["--frames", "85"], "frames", "1–81"),
        (["--size", "65x64"], "size", "multiples of 16"),
        (["--size", "4096x4096"], "size", "2048"),
        (["--fps", "0"], "fps", "1–60"),
        (["--guidance", "99"], "guidance", "0–20"),
        (["--seed", "-1"], "seed", "0–4294967295"),
        (["--negative", "x" * 1001], "negative", "1000"),
    ],
)
def test_out_of_bounds_options_give_their_error_and_no_generation(
    args: list[str], option: str, allowed: str, capsys, tiny_wan_dir: Path, no_generation
) -> None:
    code = main(
        ["кот", "--model", str(tiny_wan_dir), "--translator", "none", "--device", "cpu", *args]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {option}") and allowed in err
    assert no_generation == []


def test_empty_prompt(capsys, tiny_wan_dir: Path, no_generation) -> None:
    code = main(
        ["--steps 3", "--model", str(tiny_wan_dir), "--translator", "none", "--device", "cpu"]
    )
    assert code == 2 and "prompt" in capsys.readouterr().err
    assert no_generation == []


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ([], {}, ("balanced", 50, 5.0)),  # the default tier: the model's steps + the step cache
        ([], {"DEFAULT_QUALITY": "best"}, ("best", 50, 5.0)),
        (["--quality", "fast"], {}, ("fast", 25, 5.0)),  # no distilled weights: half the steps
        (["--quality", "fast"], {"FAST_STEPS": "6"}, ("fast", 6, 5.0)),
        (["--quality", "fast", "--steps", "7", "--guidance", "2"], {}, ("fast", 7, 2.0)),
    ],
)
def test_quality_flag(
    flags: list[str], env: dict, expected: tuple, tiny_wan_dir: Path, monkeypatch
) -> None:
    from pipeline.progress import GenerationCancelled
    from pipeline.text2video import TextToVideo

    seen = []

    def run(self, options, output, **kwargs):
        seen.append(options)
        raise GenerationCancelled("stop here")

    for name in ("DEFAULT_QUALITY", "FAST_STEPS", "FAST_LORA", "FAST_TRANSFORMER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(TextToVideo, "run", run)
    args = ["кот", "--model", str(tiny_wan_dir), "--translator", "none", "--device", "cpu"]
    assert main([*args, *flags]) == 130
    (options,) = seen
    assert (options.quality, options.steps, options.guidance) == expected


@pytest.mark.parametrize(
    ("quality", "summary"),
    [
        ("best", "quality: best, 50 steps, guidance 5"),
        ("balanced", "quality: balanced, 50 steps, guidance 5"),
        ("fast", "quality: fast, 4 steps, guidance 1"),  # the distilled LoRA's sampler
    ],
)
def test_cli_renders_an_mp4_in_each_tier(
    quality: str,
    summary: str,
    tmp_path: Path,
    tiny_wan_dir: Path,
    tiny_lora_files: dict[str, Path],
    capsys,
) -> None:
    from pipeline.quality import BUILTIN_DATA

    out = tmp_path / f"{quality}.mp4"
    ratios = ROOT / "pipeline" / "data" / BUILTIN_DATA  # the tiny Wan is not 1.3B: pass them
    code = main(
        [
            "кот играет на пианино", "-o", str(out), "--model", str(tiny_wan_dir),
            "--translator", "none", "--device", "cpu", "--size", "64x64", "--frames", "9",
            "--seed", "3", "--quality", quality, "--fast-lora", str(tiny_lora_files["original"]),
            "--cache-ratios", str(ratios), "-q",
        ]
    )  # fmt: skip
    stdout = capsys.readouterr().out
    assert code == 0
    assert summary in stdout.splitlines()
    mp4 = read_mp4(out)
    assert (mp4.width, mp4.height) == (64, 64) and len(mp4.frames) == 9


class _no_raise:
    """A stand-in for pytest.raises when the call returns normally."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False
