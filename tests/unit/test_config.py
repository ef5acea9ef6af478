"""bot/config.py and bot/logs.py: the configuration contract, and the token never reaching a log."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.backend import SettingsDoNotFit, configure
from bot.config import CLOUD_UPLOAD_LIMIT, LOCAL_UPLOAD_LIMIT, Settings
from bot.logs import MaskingFilter, MaskingFormatter, mask, register_secret
from tests.fakes.backend import FakeBackend

TOKEN = "987654321:AAHsecretSECRETsecret_0123456789abcd"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No variable of the contract may leak in from the machine running the tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_design_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    s = Settings()
    assert s.bot_token.get_secret_value() == TOKEN
    assert s.admin_ids == [] and s.allowed_user_ids == []
    assert s.telegram_api_url is None
    assert s.database_path == Path("data/bot.sqlite3")
    assert s.video_dir == Path("data/videos")
    assert s.video_retention_days == 7
    assert s.t2v_model == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    assert s.translator_model == "Helsinki-NLP/opus-mt-tc-big-zle-en"
    assert s.device == "auto"
    assert (s.max_active_jobs_per_user, s.daily_jobs_per_user) == (2, 0)
    assert (s.max_queue, s.max_prompt_chars) == (100, 1000)
    assert s.default_steps is None and s.max_pixels is None
    assert s.default_quality == "balanced" and s.fast_steps is None and not s.fast_speedups
    assert (s.compile, s.quantize, s.fast_lora, s.fast_transformer) == ("auto", None, None, None)
    assert s.upload_limit_bytes == CLOUD_UPLOAD_LIMIT
    assert s.status_min_interval == 3.0
    budgets = (s.daily_cost_per_user, s.daily_cost_per_chat, s.max_cost_per_job)
    assert budgets == (20.0, 40.0, 4.0)


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0.0), ("2.5", 2.5), ("", 4.0), (" ", 4.0), ("12", 12.0)]
)
def test_cost_budgets(monkeypatch: pytest.MonkeyPatch, value: str, expected: float) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("MAX_COST_PER_JOB", value)
    monkeypatch.setenv("DAILY_COST_PER_USER", value)
    monkeypatch.setenv("DAILY_COST_PER_CHAT", value)
    s = Settings()
    assert s.max_cost_per_job == expected
    blank = not value.strip()
    assert s.daily_cost_per_user == (20.0 if blank else expected)
    assert s.daily_cost_per_chat == (40.0 if blank else expected)


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "BOT_TOKEN": TOKEN,
        "ADMIN_IDS": "1, 2,3",
        "ALLOWED_USER_IDS": "",
        "TELEGRAM_API_URL": "http://bot-api:8081/",
        "DEFAULT_SIZE": "480х272",  # Cyrillic х, as a Russian keyboard types it
        "DEFAULT_STEPS": "20",
        "MAX_PIXELS": "",
        "COMPILE": "true",
        "LOG_LEVEL": "debug",
        "DEFAULT_QUALITY": " Fast ",
        "FAST_STEPS": "4",
        "FAST_LORA": "lightx2v/some-repo/lora.safetensors",
        "FAST_TRANSFORMER": "",
        "QUANTIZE": "FP8",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.admin_ids == [1, 2, 3]
    assert s.allowed_user_ids == []
    assert s.telegram_api_url == "http://bot-api:8081"
    assert s.upload_limit_bytes == LOCAL_UPLOAD_LIMIT
    assert s.default_width_height == (480, 272)
    assert s.default_steps == 20 and s.max_pixels is None
    assert s.compile == "on" and s.log_level == "DEBUG"  # COMPILE=true from older .env files
    assert s.quantize == "fp8" and s.fast_transformer is None
    assert s.fast_lora == "lightx2v/some-repo/lora.safetensors"
    assert s.default_quality == "fast" and s.fast_steps == 4 and s.fast_speedups
    assert s.is_admin(2) and not s.is_admin(4) and not s.is_admin(None)
    assert s.is_allowed(12345)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"BOT_TOKEN={TOKEN}\nMAX_QUEUE=7\nADMIN_IDS=42\n", "utf-8")
    s = Settings()
    assert s.max_queue == 7 and s.admin_ids == [42]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ADMIN_IDS", "1,abc"),
        ("DEFAULT_SIZE", "big"),
        ("MAX_QUEUE", "0"),
        ("BOT_TOKEN", "oops"),
        ("DEFAULT_QUALITY", "turbo"),
        ("VIDEO_RETENTION_DAYS", "-1"),
        ("MAX_COST_PER_JOB", "-1"),
        ("DAILY_COST_PER_USER", "lots"),
    ],
)
def test_bad_values_fail_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert name.lower() in str(info.value).lower()


@pytest.mark.parametrize(("value", "days"), [("0", 0), ("30", 30), ("", 7), (" ", 7)])
def test_video_retention_days(monkeypatch: pytest.MonkeyPatch, value: str, days: int) -> None:
    """0 keeps videos forever; an empty line in .env means the default, like every other name."""
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("VIDEO_RETENTION_DAYS", value)
    assert Settings().video_retention_days == days


def test_token_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    s = Settings()
    assert TOKEN not in repr(s) and TOKEN not in str(s) and TOKEN not in str(s.model_dump())
    secret_part = TOKEN.split(":")[1]
    # A malformed token is refused without echoing it.
    monkeypatch.setenv("BOT_TOKEN", "12:" + secret_part[:10])
    with pytest.raises(ValidationError) as info:
        Settings()
    assert secret_part[:10] not in str(info.value)


def test_main_reports_a_config_error_without_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.__main__ import main

    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("MAX_QUEUE", "-1")
    assert main() == 2
    err = capsys.readouterr().err
    assert "MAX_QUEUE" in err and TOKEN not in err


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text("utf-8")
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert expected <= documented, f"undocumented: {sorted(expected - documented)}"
    assert documented <= expected, f"unknown names: {sorted(documented - expected)}"


def test_log_output_masks_the_token_everywhere() -> None:
    register_secret(TOKEN)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter("%(levelname)s %(message)s"))
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        url = f"https://api.telegram.org/bot{TOKEN}/sendVideo"
        logger.warning("request to %s failed", url)
        try:
            raise RuntimeError(f"Cannot connect to {url}")
        except RuntimeError:
            logger.exception("network")
        logger.warning("secret part alone: %s", TOKEN.split(":")[1])
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "sendVideo" in out and "Cannot connect" in out
    assert TOKEN not in out and TOKEN.split(":")[1] not in out
    assert mask(f"x{TOKEN}y") == "x***y"


def test_operator_defaults_and_bounds_are_applied() -> None:
    s = Settings(
        _env_file=None, bot_token=TOKEN, default_steps=3, default_size="96x64", default_frames=5,
        max_steps=10, max_frames=17, max_pixels=128 * 128,
    )  # fmt: skip
    backend = configure(FakeBackend(), s)
    assert (backend.defaults.steps, backend.defaults.width, backend.defaults.height) == (3, 96, 64)
    assert backend.defaults.frames == 5
    assert (backend.limits.max_steps, backend.limits.max_frames) == (10, 17)
    assert backend.limits.max_pixels == 128 * 128
    assert backend.device_info() == "CPU (fake backend)"


def test_defaults_outside_the_bounds_fail_at_start() -> None:
    s = Settings(_env_file=None, bot_token=TOKEN, default_steps=50, max_steps=10)
    with pytest.raises(SettingsDoNotFit) as info:
        configure(FakeBackend(), s)
    assert info.value.option == "steps"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"COMPILE": "off"}, ("off", None)), ({"COMPILE": "0", "QUANTIZE": "none"}, ("off", None))],
)
def test_compile_and_quantize_spellings(
    env: dict, expected: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert (s.compile, s.quantize) == expected


def test_unknown_quantize_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("QUANTIZE", "int3")
    with pytest.raises(ValueError, match="quantize"):
        Settings()


def test_model_revisions_reach_the_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    """T2V_MODEL_REVISION and TRANSLATOR_REVISION pin what is downloaded (``revision=``)."""
    from bot import backend
    from pipeline.text2video import TextToVideo

    seen: dict[str, object] = {}

    def fake_load(
        config,
        translator_model=None,
        translator_device="cpu",
        translator_revision=None,
        image_config=None,
        **prompt,
    ):
        seen.update(revision=config.revision, translator_revision=translator_revision)
        seen["image_model"] = image_config.model if image_config is not None else None
        seen.update(prompt)
        return FakeBackend()

    monkeypatch.setattr(TextToVideo, "load", staticmethod(fake_load))
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("T2V_MODEL_REVISION", "a1b2c3d")
    monkeypatch.setenv("TRANSLATOR_REVISION", "v1.0")
    monkeypatch.setenv("PROMPT_MODEL", "Qwen/Qwen2.5-1.5B-Instruct")
    backend._load_text_to_video(Settings())
    assert seen == {
        "revision": "a1b2c3d",
        "translator_revision": "v1.0",
        "image_model": None,
        # the prompt improver's settings reach the loader too
        "prompt_model": "Qwen/Qwen2.5-1.5B-Instruct",
        "prompt_device": "auto",
        "prompt_max_tokens": 256,
        "prompt_timeout": 20.0,
    }
    monkeypatch.setenv("T2V_MODEL_REVISION", "")
    monkeypatch.setenv("I2V_MODEL", "/models/wan-ti2v")  # I2V_MODEL is loaded with the model
    backend._load_text_to_video(Settings())
    assert seen["revision"] is None and seen["image_model"] == "/models/wan-ti2v"


def test_the_generator_passes_the_revision_to_diffusers(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import generator

    seen: dict[str, object] = {}

    def fake_class_name(model, revision=None):
        seen["class_revision"] = revision
        return "WanPipeline"

    def fake_pipeline(model, class_name, **kwargs):
        seen["load_kwargs"] = kwargs
        raise RuntimeError("stop here")

    monkeypatch.setattr(generator, "read_class_name", fake_class_name)
    monkeypatch.setattr(generator, "load_pipeline", fake_pipeline)
    config = generator.GeneratorConfig(model="org/model", device="cpu", revision="abc123")
    with pytest.raises(Exception, match="stop here"):
        generator.VideoGenerator.load(config)
    assert seen["class_revision"] == "abc123"
    assert seen["load_kwargs"]["revision"] == "abc123"  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("none", None),
        (" OFF ", None),
        ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"),
    ],
)
def test_prompt_model_blank_or_none_is_off(value: str, expected: str | None) -> None:
    settings = Settings(_env_file=None, bot_token=TOKEN, prompt_model=value)
    assert settings.prompt_model == expected
    assert (settings.prompt_device, settings.prompt_max_tokens, settings.prompt_timeout) == (
        "auto",
        256,
        20.0,
    )


@pytest.mark.parametrize(("name", "value"), [("prompt_timeout", 0), ("prompt_max_tokens", 4)])
def test_prompt_bounds_are_checked(name: str, value: float) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, bot_token=TOKEN, **{name: value})


def test_content_policy_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Empty lines (as in .env.example) mean off; a path and a model are taken as given."""
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("BLOCKED_WORDS_FILE", "")
    monkeypatch.setenv("NSFW_MODEL", " ")
    settings = Settings()
    assert settings.blocked_words_file is None and settings.nsfw_model is None
    assert settings.nsfw_threshold == 0.5
    monkeypatch.setenv("BLOCKED_WORDS_FILE", str(tmp_path / "words.txt"))
    monkeypatch.setenv("NSFW_MODEL", "Falconsai/nsfw_image_detection")
    monkeypatch.setenv("NSFW_THRESHOLD", "0.8")
    settings = Settings()
    assert settings.blocked_words_file == tmp_path / "words.txt"
    assert (settings.nsfw_model, settings.nsfw_threshold) == ("Falconsai/nsfw_image_detection", 0.8)
    for bad in ("0", "1.5", "-1"):
        monkeypatch.setenv("NSFW_THRESHOLD", bad)
        with pytest.raises(ValidationError, match=r"(?i)nsfw_threshold"):
            Settings()


def test_a_missing_blocked_words_file_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from bot.__main__ import main

    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "bot.sqlite3"))
    monkeypatch.setenv("VIDEO_DIR", str(tmp_path / "videos"))
    monkeypatch.setenv("BLOCKED_WORDS_FILE", str(tmp_path / "absent.txt"))
    monkeypatch.setattr("bot.__main__.load_backend", _no_model)
    assert main([]) == 1
    err = capfd.readouterr().err
    assert "cannot start: BLOCKED_WORDS_FILE" in err and "absent.txt: no such file" in err


async def _no_model(settings: Settings) -> object:
    from bot.backend import configure

    return configure(FakeBackend(), settings)
