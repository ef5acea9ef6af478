"""WEBHOOK_URL / WEBHOOK_SECRET / WEBHOOK_LISTEN (bot/config.py): webhook mode's settings, and the
receiver each configuration gets (bot/__main__.py ``receiver_for``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.__main__ import receiver_for
from bot.config import Settings, parse_listen
from bot.telegram.polling import Polling
from bot.telegram.webhook import Webhook

TOKEN = "987654321:AAHsecretSECRETsecret_0123456789abcd"
SECRET = "s3cret_Token-" + "x" * 20


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("BOT_TOKEN", TOKEN)


def test_unset_means_long_polling() -> None:
    s = Settings()
    assert (s.webhook_url, s.webhook_secret, s.webhook_listen) == (None, None, "0.0.0.0:8080")
    assert isinstance(receiver_for(s), Polling)


def test_webhook_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com/telegram/hook")
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WEBHOOK_LISTEN", "127.0.0.1:8443")
    s = Settings()
    assert s.webhook_url == "https://bot.example.com/telegram/hook"
    assert s.webhook_secret is not None and s.webhook_secret.get_secret_value() == SECRET
    assert s.webhook_host_port == ("127.0.0.1", 8443)
    receiver = receiver_for(s)
    assert isinstance(receiver, Webhook)
    assert (receiver.url, receiver.path, receiver.host, receiver.port) == (
        "https://bot.example.com/telegram/hook",
        "/telegram/hook",
        "127.0.0.1",
        8443,
    )
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())


def test_empty_lines_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_LISTEN"):
        monkeypatch.setenv(name, "")
    s = Settings()
    assert (s.webhook_url, s.webhook_secret, s.webhook_listen) == (None, None, "0.0.0.0:8080")


def test_a_webhook_needs_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com/hook")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "webhook_secret" in str(info.value) and "required" in str(info.value)


@pytest.mark.parametrize(
    "secret",
    ["with space", "semi;colon", "кириллица", "x" * 257, "slash/slash", "dot.dot"],
)
def test_a_secret_telegram_would_refuse_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com/hook")
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "webhook_secret" in str(info.value) and secret not in str(info.value)


@pytest.mark.parametrize("secret", ["a", "A-Z_a-z_0-9", "x" * 256])
def test_every_secret_telegram_accepts_is_accepted(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com/hook")
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    assert Settings().webhook_secret is not None


@pytest.mark.parametrize("url", ["bot.example.com/hook", "ftp://bot.example.com/", "https://"])
def test_a_webhook_url_must_be_a_full_url(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("WEBHOOK_URL", url)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    with pytest.raises(ValidationError, match="webhook_url"):
        Settings()


def test_plain_http_only_with_a_self_hosted_bot_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_URL", "http://bot:8080/hook")
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    with pytest.raises(ValidationError, match="https"):
        Settings()
    monkeypatch.setenv("TELEGRAM_API_URL", "http://bot-api:8081")
    assert Settings().webhook_url == "http://bot:8080/hook"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        ("127.0.0.1:88", ("127.0.0.1", 88)),
        ("[::]:8443", ("::", 8443)),
        (":9000", ("0.0.0.0", 9000)),
        ("bot:443", ("bot", 443)),
    ],
)
def test_listen_addresses(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value) == parsed


@pytest.mark.parametrize("value", ["8080", "host:", "host:http", "host:0", "host:70000"])
def test_bad_listen_addresses_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WEBHOOK_LISTEN", value)
    with pytest.raises(ValidationError, match="webhook_listen"):
        Settings()


def test_main_masks_the_webhook_secret_in_logs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main`` registers the secret with the log masking before anything can log it."""
    import logging

    import bot.__main__ as entry

    async def run(settings: Settings) -> None:
        logging.getLogger("bot.test").warning("the secret is %s", SECRET)

    monkeypatch.setattr(entry, "run", run)
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com/hook")
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    assert entry.main() == 0
    err = capsys.readouterr().err
    assert "the secret is ***" in err and SECRET not in err
