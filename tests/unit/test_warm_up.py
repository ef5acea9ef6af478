"""bot.backend.load_backend warms a CUDA model up before the worker takes jobs, never a CPU one."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

import bot.backend as backend_module
from bot.backend import load_backend
from pipeline.text2video import TextToVideo
from tests.fakes.backend import FakeBackend, wan_like_backend
from tests.handlers.harness import make_settings


def loading(monkeypatch: pytest.MonkeyPatch, fake: FakeBackend) -> None:
    """``load_backend`` gets ``fake`` where it would load the real ``TextToVideo``."""
    monkeypatch.setattr(backend_module, "_load_text_to_video", lambda settings: fake)


async def test_a_cuda_model_is_warmed_up_at_the_operators_default_size(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = wan_like_backend(on_gpu=True)
    loading(monkeypatch, fake)
    with caplog.at_level(logging.INFO, logger="bot.backend"):
        model = await load_backend(make_settings(default_steps=30, default_size="480x832"))
    assert len(fake.warm_ups) == 1
    defaults, thread = fake.warm_ups[0]
    assert defaults == model.defaults  # the configured defaults, not the model's own
    assert (defaults.steps, defaults.width, defaults.height) == (30, 480, 832)
    assert thread != threading.current_thread().name  # off the event loop
    assert "Warm-up done in" in caplog.text


async def test_a_cpu_model_is_not_warmed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = wan_like_backend()  # on_gpu False, as TextToVideo on a CPU
    loading(monkeypatch, fake)
    await load_backend(make_settings())
    assert fake.warm_ups == []


async def test_a_failed_warm_up_is_logged_and_the_bot_starts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = wan_like_backend(on_gpu=True, warm_up_error=RuntimeError("CUDA out of memory"))
    loading(monkeypatch, fake)
    with caplog.at_level(logging.INFO, logger="bot.backend"):
        model = await load_backend(make_settings())
    assert model.inner is fake and len(fake.warm_ups) == 1
    assert fake.freed == 1  # the memory the failed render held is returned
    assert "warm-up failed" in caplog.text


def test_text_to_video_says_whether_it_runs_on_cuda() -> None:
    def on(device: str) -> bool:
        return TextToVideo(SimpleNamespace(device=device)).on_gpu  # type: ignore[arg-type]

    assert on("cuda") and on("cuda:1")
    assert not on("cpu") and not on("mps")
