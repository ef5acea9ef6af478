"""Loading a checkpoint whose family needs more than ``DiffusionPipeline.from_pretrained``.

``from_pretrained`` builds every folder of a checkpoint with the class that ``model_index.json``
names. Where that class needs more than the pipeline uses, the loader builds the part the
pipeline does use and hands it over after loading the rest, so the family loads in every
environment the project supports.

- ``Kandinsky5T2VPipeline``: ``tokenizer/`` holds a ``Qwen2VLProcessor`` (tokenizer, image and
  video processors). The pipeline only tokenizes text, but building the processor's video half
  needs torchvision, which the project does not depend on (a PyPI torchvision wheel breaks a CPU
  torch). The processor also lacks the tokenizer methods the generator uses to cut a prompt to
  ``max_sequence_length``. So the pipeline gets the Qwen tokenizer from that folder.
"""

from __future__ import annotations

from typing import Any

# pipeline class → components whose folder is loaded as a plain tokenizer
TEXT_TOKENIZER_ONLY: dict[str, tuple[str, ...]] = {
    "Kandinsky5T2VPipeline": ("tokenizer",),
}


def family_components(class_name: str, model: str, revision: str | None = None) -> dict[str, Any]:
    """Components this family gets ready-made instead of from ``from_pretrained`` (usually none)."""
    names = TEXT_TOKENIZER_ONLY.get(class_name, ())
    if not names:
        return {}
    from transformers import AutoTokenizer

    return {
        name: AutoTokenizer.from_pretrained(model, subfolder=name, revision=revision)
        for name in names
    }


def load_pipeline(model: str, class_name: str, **kwargs: Any) -> Any:
    """``DiffusionPipeline.from_pretrained(model, **kwargs)`` with the family's own components."""
    from diffusers import DiffusionPipeline

    ready = family_components(class_name, model, kwargs.get("revision"))
    # None skips a folder; the ready component is registered after (diffusers would insist on
    # the class model_index.json names if it were passed in).
    pipe = DiffusionPipeline.from_pretrained(model, **dict.fromkeys(ready), **kwargs)
    if ready:
        pipe.register_modules(**ready)
    return pipe


# pipeline class → prompts are encoded here when ftfy is missing (see :func:`needs_own_prompt_encoding`)
UNGUARDED_FTFY: tuple[str, ...] = ("WanImageToVideoPipeline",)


def needs_own_prompt_encoding(pipe: Any) -> bool:
    """Whether the prompt must be encoded by :func:`wan_prompt_embeds` instead of the pipeline.

    diffusers' ``WanPipeline`` cleans prompts with ftfy only when it is installed, but
    ``WanImageToVideoPipeline`` (0.3x–0.42) calls ``ftfy.fix_text`` unconditionally and fails
    with ``NameError`` without it. ftfy is an optional extra of diffusers; where it is missing the
    generator passes ``prompt_embeds`` computed the way the pipeline computes them."""
    if type(pipe).__name__ not in UNGUARDED_FTFY:
        return False
    from diffusers.utils import is_ftfy_available

    return not is_ftfy_available()


def wan_prompt_embeds(pipe: Any, prompt: str, max_sequence_length: int) -> Any:
    """UMT5 embeddings of ``prompt`` as Wan pipelines compute them: padded to
    ``max_sequence_length``, the positions after the prompt's tokens zeroed (HTML unescaped and
    whitespace collapsed, as the pipeline's own cleaning does besides ftfy)."""
    import html
    import re

    import torch

    text = re.sub(r"\s+", " ", html.unescape(html.unescape(prompt or ""))).strip()
    inputs = pipe.tokenizer(
        [text],
        padding="max_length",
        max_length=max_sequence_length,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    encoder = pipe.text_encoder
    device = next(encoder.parameters()).device
    mask = inputs.attention_mask
    length = int(mask.gt(0).sum())
    with torch.no_grad():
        hidden = encoder(inputs.input_ids.to(device), mask.to(device)).last_hidden_state
    hidden = hidden.to(dtype=encoder.dtype)
    hidden[:, length:] = 0
    return hidden
