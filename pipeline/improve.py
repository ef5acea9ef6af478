"""The prompt improver: a short Russian (or English) request → one detailed English video prompt.

Text-to-video models such as Wan were trained on long, concrete English captions (who or what,
doing what, where, seen how, in which light and style). People type five words, often in
Russian. A small instruct LLM (``PROMPT_MODEL``, e.g. Qwen2.5-1.5B/3B-Instruct, loaded through
``AutoModelForCausalLM`` and the tokenizer's own chat template) does translation and extension in
one pass, under :data:`SYSTEM_PROMPT`, the project's own instruction.

An LLM is not trusted: every run is bounded and checked.

- ``max_new_tokens`` caps the work; ``transformers.MaxTimeCriteria`` (a ``StoppingCriteria``)
  caps the wall-clock time, so a slow device never holds a request for long.
- :func:`check_output` cleans what came back (quotes, ``Prompt:``/"Here is…" preambles, markdown,
  line breaks) and refuses it when it is empty, too short, holds Cyrillic (not translated), is
  over the length cap with no sentence to cut at, or echoes the instruction.
- Any refusal, a timeout, or an error falls back to the caller's plain translation
  (:meth:`PromptImprover.improve` takes it as ``fallback``): the user still gets a video.

The model's own ``generation_config`` (sampling, temperature, repetition penalty) decides how it
samples, as its authors tuned it. One lock serialises runs: one model, one prompt at a time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ModelLoadError
from pipeline.presets import looks_like_path, one_line
from pipeline.translate import has_cyrillic

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 256
"""About 150–200 English words: longer than the captions video models were trained on."""
DEFAULT_TIMEOUT = 20.0
"""Seconds of generation before the plain translation is used instead."""
MAX_REQUEST_TOKENS = 512
"""The request (at most ``MAX_PROMPT_CHARS`` characters) is cut to this many tokens; the
instruction is never cut."""
MAX_OUTPUT_CHARS = 1200
"""The length cap of an improved prompt (longer text is cut at its last sentence in the cap)."""
MIN_OUTPUT_WORDS = 4
ECHO_WORDS = 6
"""An output sharing a run of this many words with the instruction is an echo of it."""

SYSTEM_PROMPT = (
    "You turn short video requests into prompts for a text-to-video model. The request may be "
    "in Russian or English. Write one English paragraph of 60 to 120 words that describes the "
    "video the person asked for: the main subject and how it looks, what it does and how it "
    "moves, the setting and background, the camera (shot size, angle, movement), the light and "
    "time of day, and the visual style (for example cinematic, photorealistic, anime, "
    "watercolor). Keep every detail the request gives and never contradict it; add only details "
    "that fit it. Describe one continuous shot, in the present tense, as concrete visible facts. "
    "Do not add text, captions or logos to the scene. Answer with the paragraph only: no title, "
    "no preamble, no quotes, no lists, no notes."
)

_QUOTES = "\"'«»“”„‘’`"
_PREAMBLE_RE = re.compile(
    r"^\s*(?:\*\*)?(?:(?:improved|enhanced|detailed|video|final|english|new)\s+)*"
    r"(?:prompt|description|paragraph)(?:\s+for[^:\n]{0,40})?\s*(?:\*\*)?\s*:\s*(?:\*\*)?",
    re.IGNORECASE,
)
_HERE_IS_RE = re.compile(
    r"^\s*(?:sure|certainly|okay|ok)?[,!.\s]*here(?:'s| is)[^:\n]{0,80}:\s*", re.IGNORECASE
)
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s|$)")
_WORD_RE = re.compile(r"[a-z0-9']+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")


class BadOutput(ValueError):
    """What the model wrote cannot be used; ``reason`` is a short code for logs and metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ImprovedPrompt:
    """The English prompt for the video model and where it came from."""

    text: str
    improved: bool
    """True: written by the improver; False: the plain translation (the fallback)."""
    reason: str = "ok"
    """``ok``, ``timeout``, ``error``, ``no_model``, or a :class:`BadOutput` reason."""


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def _echoes(text: str, instruction: str, run: int = ECHO_WORDS) -> bool:
    source = _words(instruction)
    shingles = {tuple(source[i : i + run]) for i in range(len(source) - run + 1)}
    words = _words(text)
    return any(tuple(words[i : i + run]) in shingles for i in range(len(words) - run + 1))


def check_output(
    raw: str, *, instruction: str = SYSTEM_PROMPT, max_chars: int = MAX_OUTPUT_CHARS
) -> str:
    """The usable prompt in ``raw``, cleaned; raises :class:`BadOutput` when there is none."""
    text = raw.replace("**", "").strip()
    text = _HERE_IS_RE.sub("", text, count=1)
    text = _PREAMBLE_RE.sub("", text, count=1)
    text = " ".join(text.split())  # one paragraph
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    text = text.strip(_QUOTES + " ")
    if not text:
        raise BadOutput("empty")
    if has_cyrillic(text):
        raise BadOutput("not_english")
    if _CONTROL_RE.search(text):
        raise BadOutput("garbled")
    if _echoes(text, instruction):
        raise BadOutput("echo")
    if len(text) > max_chars:
        ends = [m.end() for m in _SENTENCE_END_RE.finditer(text, 0, max_chars)]
        if not ends:
            raise BadOutput("too_long")
        text = text[: ends[-1]]
    if len(_words(text)) < MIN_OUTPUT_WORDS:
        raise BadOutput("too_short")
    return text


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when there is one, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class PromptImprover:
    """A loaded instruct LLM with its chat template; blocking and thread-safe (one run at a time).

    ``raw_output`` is the seam tests use to put realistic model answers through the same checks
    and fallbacks; by default it is :meth:`generate`."""

    def __init__(
        self,
        tokenizer: Any,
        model: Any,
        device: str = "cpu",
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        timeout: float = DEFAULT_TIMEOUT,
        instruction: str = SYSTEM_PROMPT,
    ) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.timeout = timeout
        self.instruction = instruction
        self.raw_output: Callable[[str], str] = self.generate
        self.last_new_tokens = 0
        """Tokens the last :meth:`generate` produced (for tests and logs)."""
        self.last_stop = "eos"
        """Why the last :meth:`generate` ended: ``eos`` (the model finished), ``length``
        (``max_new_tokens``: cut at its last whole sentence) or ``time`` (the timeout: not used)."""
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model: str,
        device: str = "auto",
        *,
        revision: str | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> PromptImprover:
        """Load once from a Hub id (offline from the cache) or a local directory; raises
        :class:`ModelLoadError` with one line when that fails or the tokenizer has no chat
        template (an instruct model has one)."""
        from pathlib import Path

        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if looks_like_path(model) and not Path(model).expanduser().is_dir():
            raise ModelLoadError(f"prompt model directory not found: {model}")
        device = resolve_device(device)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
            llm = AutoModelForCausalLM.from_pretrained(model, revision=revision, dtype=dtype)
        except Exception as exc:
            raise ModelLoadError(f"cannot load prompt model {model}: {one_line(exc)}") from exc
        if not tokenizer.chat_template:
            raise ModelLoadError(
                f"prompt model {model} has no chat template (not an instruct model)"
            )
        llm.to(device).eval()
        return cls(tokenizer, llm, device, max_new_tokens=max_new_tokens, timeout=timeout)

    def messages(self, request: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.instruction},
            {"role": "user", "content": request.strip()},
        ]

    def generate(self, request: str) -> str:
        """The model's raw answer to ``request``, bounded by ``max_new_tokens`` and ``timeout``."""
        import torch
        from transformers import MaxTimeCriteria, StoppingCriteriaList

        request_ids = self.tokenizer(request, add_special_tokens=False)["input_ids"]
        if len(request_ids) > MAX_REQUEST_TOKENS:
            request = self.tokenizer.decode(request_ids[:MAX_REQUEST_TOKENS])
        inputs = self.tokenizer.apply_chat_template(
            self.messages(request),
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        deadline = MaxTimeCriteria(max_time=self.timeout)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=self.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([deadline]),
                pad_token_id=(
                    self.tokenizer.pad_token_id
                    if self.tokenizer.pad_token_id is not None
                    else self.tokenizer.eos_token_id
                ),
            )
        new = out[0, ids.shape[1] :]
        self.last_new_tokens = int(new.shape[0])
        self.last_stop = self._why_stopped(new.tolist())
        return self.tokenizer.decode(new, skip_special_tokens=True)

    def _why_stopped(self, new: list[int]) -> str:
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        if new and new[-1] in eos_ids:
            return "eos"
        return "length" if len(new) >= self.max_new_tokens else "time"

    def improve(self, request: str, fallback: Callable[[str], str]) -> ImprovedPrompt:
        """The improved prompt, or ``fallback(request)`` (the plain translation) when the model
        timed out, failed, or wrote something :func:`check_output` refuses."""
        start = time.perf_counter()
        with self._lock:  # the fallback runs outside it: it has its own model and lock
            text, reason = self._attempt(request)
        if text is None:
            return ImprovedPrompt(fallback(request), improved=False, reason=reason)
        log.info(
            "prompt improved in %.1f s (%d tokens)",
            time.perf_counter() - start,
            self.last_new_tokens,
        )
        return ImprovedPrompt(text, improved=True)

    def _attempt(self, request: str) -> tuple[str | None, str]:
        """``(prompt, "ok")``, or ``(None, why)`` when it cannot be used."""
        self.last_stop = "eos"
        try:
            raw = self.raw_output(request)
        except Exception as exc:
            log.warning("prompt improver failed: %s", one_line(exc))
            return None, "error"
        if self.last_stop == "time":
            log.warning("prompt improver: timed out after %.1f s", self.timeout)
            return None, "timeout"
        if self.last_stop == "length":  # cut mid-sentence: keep the whole sentences
            ends = [m.end() for m in _SENTENCE_END_RE.finditer(raw)]
            raw = raw[: ends[-1]] if ends else ""
        try:
            return check_output(raw, instruction=self.instruction), "ok"
        except BadOutput as bad:
            log.warning("prompt improver: output refused (%s)", bad.reason)
            return None, bad.reason


def load_improver(
    model: str | None,
    device: str = "auto",
    *,
    revision: str | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    timeout: float = DEFAULT_TIMEOUT,
) -> PromptImprover | None:
    """``None`` when no prompt model is configured (``PROMPT_MODEL`` empty or ``none``)."""
    if not model or model.strip().lower() == "none":
        return None
    return PromptImprover.load(
        model, device, revision=revision, max_new_tokens=max_new_tokens, timeout=timeout
    )
