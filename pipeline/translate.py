"""Russian (any Cyrillic) prompt → English, for video models whose text encoder reads English.

Any seq2seq translation model loads through ``AutoTokenizer``/``AutoModelForSeq2SeqLM`` (default
``Helsinki-NLP/opus-mt-tc-big-zle-en``). It runs on the CPU by default so the GPU stays free for
video. A long prompt is translated sentence by sentence in pieces the model accepts, so nothing
crashes on a 1000-character prompt and nothing is silently dropped.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any

from pipeline.errors import ModelLoadError
from pipeline.presets import looks_like_path, one_line

_CYRILLIC_RE = re.compile(r"[\u0400-\u04FF\u0500-\u052F\u2DE0-\u2DFF\uA640-\uA69F\u1C80-\u1C8F]")
_SENTENCE_RE = re.compile(r"(?<=[.!?…;])\s+|\n+")
_UNBOUNDED = 1_000_000  # tokenizers without a limit report a huge model_max_length
MAX_PIECES = 32  # bounds the work for one prompt, whatever its length


def has_cyrillic(text: str) -> bool:
    """True when ``text`` holds at least one Cyrillic letter, i.e. needs translating."""
    return bool(_CYRILLIC_RE.search(text))


class Translator:
    """A loaded seq2seq translation model; thread-safe, with an LRU cache per text."""

    def __init__(self, tokenizer: Any, model: Any, device: str = "cpu", cache_size: int = 512):
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.max_input_tokens = _input_limit(tokenizer, model)
        self.max_output_tokens = _output_limit(model, self.max_input_tokens)
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str, device: str = "cpu", revision: str | None = None) -> Translator:
        """Load once from a Hub id (offline from the cache; ``revision`` pins a branch, tag or
        commit) or a local directory."""
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        if looks_like_path(model):
            from pathlib import Path

            if not Path(model).expanduser().is_dir():
                raise ModelLoadError(f"translator directory not found: {model}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            seq2seq = AutoModelForSeq2SeqLM.from_pretrained(model, revision=revision)
        except Exception as exc:
            raise ModelLoadError(f"cannot load translator {model}: {one_line(exc)}") from exc
        seq2seq.to(device).eval()
        return cls(tokenizer, seq2seq, device)

    def translate(self, text: str) -> str:
        """English for Cyrillic text; any other text comes back unchanged."""
        text = text.strip()
        if not has_cyrillic(text):
            return text
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
            result = " ".join(t for t in self._translate_pieces(self.pieces(text)) if t)
            self._cache[text] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return result

    def pieces(self, text: str) -> list[str]:
        """Whole sentences grouped up to the model's input limit; an overlong sentence split by words."""
        budget = self.max_input_tokens
        units: list[str] = []
        for sentence in (s.strip() for s in _SENTENCE_RE.split(text)):
            if not sentence:
                continue
            if self._count(sentence) <= budget:
                units.append(sentence)
            else:
                units.extend(self._split_words(sentence, budget))
        pieces: list[str] = []
        for unit in units:
            if pieces and self._count(f"{pieces[-1]} {unit}") <= budget:
                pieces[-1] = f"{pieces[-1]} {unit}"
            else:
                pieces.append(unit)
        return pieces[:MAX_PIECES]

    def _split_words(self, sentence: str, budget: int) -> list[str]:
        parts: list[str] = []
        for word in sentence.split():
            if parts and self._count(f"{parts[-1]} {word}") <= budget:
                parts[-1] = f"{parts[-1]} {word}"
            else:
                parts.append(word)  # a single word over the budget is cut by the tokenizer
        return parts

    def _count(self, text: str) -> int:
        # tokenize() + specials: counts without the "sequence too long" warning of __call__
        return len(self.tokenizer.tokenize(text)) + self.tokenizer.num_special_tokens_to_add()

    def _translate_pieces(self, pieces: list[str]) -> list[str]:
        import torch

        if not pieces:
            return []
        batch = self.tokenizer(
            pieces,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_input_tokens,
        ).to(self.device)
        longest = int(batch["input_ids"].shape[1])
        max_new = min(self.max_output_tokens, 2 * longest + 16)
        with torch.inference_mode():
            # max_length (decoder start + new tokens) rather than max_new_tokens: the model's own
            # generation_config may set max_length, and the two together only produce a warning
            out = self.model.generate(**batch, max_length=max_new + 1)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def load_translator(
    model: str | None, device: str = "cpu", revision: str | None = None
) -> Translator | None:
    """``None`` when translation is disabled (``model`` is empty or ``none``)."""
    if not model or model.strip().lower() == "none":
        return None
    return Translator.load(model, device=device, revision=revision)


def _input_limit(tokenizer: Any, model: Any) -> int:
    limits = [int(tokenizer.model_max_length)] if tokenizer.model_max_length < _UNBOUNDED else []
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions:
        limits.append(int(positions))
    return max(8, min(limits)) if limits else 512


def _output_limit(model: Any, fallback: int) -> int:
    config = model.config
    positions = getattr(config, "max_position_embeddings", None) or fallback
    return max(8, int(positions) - 1)
