"""Translator plumbing on a tiny random Marian model (its words are gibberish; the flow is not)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from pipeline.errors import ModelLoadError
from pipeline.translate import Translator, has_cyrillic, load_translator


@pytest.fixture(scope="module")
def translator(tiny_marian_dir: Path) -> Translator:
    torch.set_num_threads(1)  # tiny models gain nothing from threads; a busy CPU makes them crawl
    loaded = load_translator(str(tiny_marian_dir))
    assert loaded is not None
    return loaded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("кот", True),
        ("a cat and a кот", True),
        ("ёжик", True),
        ("Україна ї є ґ", True),
        ("a cat plays piano", False),
        ("123 !?", False),
        ("", False),
        ("x", False),  # Cyrillic х is not Latin x and vice versa
        ("х", True),
    ],
)
def test_has_cyrillic(text: str, expected: bool) -> None:
    assert has_cyrillic(text) is expected


def test_none_disables(tiny_marian_dir: Path) -> None:
    assert load_translator("none") is None
    assert load_translator("None") is None
    assert load_translator("") is None


def test_missing_dir_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        Translator.load(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="cannot load translator"):
        Translator.load(str(tmp_path))  # exists, but holds no model


def test_limits_come_from_the_model(translator: Translator) -> None:
    assert translator.max_input_tokens == 64  # tokenizer model_max_length and positions: 64
    assert translator.max_output_tokens <= 64


def test_translates_only_cyrillic(translator: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    real = translator._translate_pieces
    monkeypatch.setattr(
        translator, "_translate_pieces", lambda pieces: calls.append(pieces) or real(pieces)
    )
    assert translator.translate("  a cat plays piano ") == "a cat plays piano"
    assert calls == []
    out = translator.translate("кот играет на пианино")
    assert isinstance(out, str) and len(calls) == 1


def test_cached_per_text(translator: Translator, monkeypatch: pytest.MonkeyPatch) -> None:
    first = translator.translate("собака бежит по пляжу")
    monkeypatch.setattr(translator, "_translate_pieces", lambda pieces: pytest.fail("not cached"))
    assert translator.translate("собака бежит по пляжу") == first


def test_long_prompt_is_split_within_the_limit(translator: Translator) -> None:
    text = ("Кот играет на пианино в космосе, мультяшный стиль. " * 30)[:1000]
    pieces = translator.pieces(text)
    assert len(pieces) > 1
    assert all(translator._count(p) <= translator.max_input_tokens for p in pieces)
    assert " ".join(pieces).split() == text.split()  # nothing dropped


def test_survives_a_1000_char_prompt(translator: Translator) -> None:
    text = ("Кот играет на пианино в космосе, мультяшный стиль. " * 30)[:1000]
    assert translator.translate(text)
    assert isinstance(translator.translate("ж" * 1000), str)  # one unbroken word


def test_thread_safe(translator: Translator) -> None:
    texts = [f"красивый город ночью {i}" for i in range(4)] * 2
    results: dict[int, str] = {}

    def work(i: int) -> None:
        results[i] = translator.translate(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == results[i + 4] for i in range(4))
