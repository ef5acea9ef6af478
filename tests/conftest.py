"""Shared fixtures: tiny random-weight checkpoints built once per session, never downloaded."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny models are slower with many threads on a busy 2-core machine; subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_wan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_models import build_tiny_wan

    return build_tiny_wan(tmp_path_factory.mktemp("models") / "tiny-wan")


@pytest.fixture(scope="session")
def tiny_marian_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_models import build_tiny_marian

    return build_tiny_marian(tmp_path_factory.mktemp("models") / "tiny-marian")


@pytest.fixture(scope="session")
def tiny_ltx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_models import build_tiny_ltx

    return build_tiny_ltx(tmp_path_factory.mktemp("models") / "tiny-ltx")


@pytest.fixture(scope="session")
def tiny_cogvideox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_models import build_tiny_cogvideox

    return build_tiny_cogvideox(tmp_path_factory.mktemp("models") / "tiny-cogvideox")


@pytest.fixture(scope="session")
def tiny_kandinsky5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_models import build_tiny_kandinsky5

    return build_tiny_kandinsky5(tmp_path_factory.mktemp("models") / "tiny-kandinsky5")


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 instruct model (``PROMPT_MODEL``) in its real layout."""
    from tests.fakes.tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("models") / "tiny-qwen")


@pytest.fixture(scope="session")
def tiny_wan_i2v_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_i2v import build_tiny_wan_i2v

    return build_tiny_wan_i2v(tmp_path_factory.mktemp("models") / "tiny-wan-i2v")


@pytest.fixture(scope="session")
def tiny_wan21_i2v_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_i2v import build_tiny_wan_i2v

    return build_tiny_wan_i2v(tmp_path_factory.mktemp("models") / "tiny-wan21-i2v", "wan21")


@pytest.fixture(scope="session")
def tiny_ltx_i2v_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_i2v import build_tiny_ltx_i2v

    return build_tiny_ltx_i2v(tmp_path_factory.mktemp("models") / "tiny-ltx-i2v")
