"""Tiny random LoRAs and distilled transformers for the tiny Wan (``tiny_models.build_tiny_wan``).

Two key namings, as real step-distilled Wan LoRAs ship: diffusers' own (``transformer.blocks.0.
attn1.to_q.lora_A.weight``, what ``save_lora_weights`` writes) and the original Wan naming
(``diffusion_model.blocks.0.self_attn.q.lora_down.weight`` with ``.alpha``, as ComfyUI-style
files such as the CausVid and lightx2v extractions name them), which diffusers'
``load_lora_weights`` converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_ATTN = [("q", "to_q"), ("k", "to_k"), ("v", "to_v"), ("o", "to_out.0")]


@dataclass(frozen=True)
class WanShape:
    """What a Wan LoRA must fit: blocks, hidden size, feed-forward size; and the LoRA's rank."""

    blocks: int = 2
    dim: int = 24  # the tiny Wan: 2 heads x 12
    ffn: int = 32
    rank: int = 4
    scale: float = 0.3  # of the random factors

    def modules(self) -> list[tuple[str, str, int, int]]:
        """(original Wan name, diffusers name, in features, out features) of each adapted layer."""
        d, f = self.dim, self.ffn
        return [
            *[(f"self_attn.{o}", f"attn1.{c}", d, d) for o, c in _ATTN],
            *[(f"cross_attn.{o}", f"attn2.{c}", d, d) for o, c in _ATTN],
            ("ffn.0", "ffn.net.0.proj", d, f),
            ("ffn.2", "ffn.net.2", f, d),
        ]


TINY = WanShape()
WAN_1_3B = WanShape(blocks=30, dim=1536, ffn=8960, rank=64, scale=0.01)
"""Wan 2.1 T2V 1.3B, rank 64 like lightx2v's distill LoRAs (for timing with random weights)."""


def _pairs(seed: int, shape: WanShape):
    import torch

    gen = torch.Generator().manual_seed(seed)
    for block in range(shape.blocks):
        for original, diffusers_name, fan_in, fan_out in shape.modules():
            down = torch.randn(shape.rank, fan_in, generator=gen) * shape.scale
            up = torch.randn(fan_out, shape.rank, generator=gen) * shape.scale
            yield block, original, diffusers_name, down, up


def build_diffusers_lora(path: Path, seed: int = 0, shape: WanShape = TINY) -> Path:
    """A LoRA file in diffusers' naming (``transformer.blocks.N.attn1.to_q.lora_A.weight``)."""
    from safetensors.torch import save_file

    state = {}
    for block, _, name, down, up in _pairs(seed, shape):
        state[f"transformer.blocks.{block}.{name}.lora_A.weight"] = down.contiguous()
        state[f"transformer.blocks.{block}.{name}.lora_B.weight"] = up.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def build_original_wan_lora(path: Path, seed: int = 0, shape: WanShape = TINY) -> Path:
    """The same kind of LoRA in the original Wan naming, with ``alpha`` scales
    (``diffusion_model.blocks.N.self_attn.q.lora_down.weight``, ``...lora_up.weight``,
    ``...alpha``)."""
    import torch
    from safetensors.torch import save_file

    state = {}
    for block, original, _, down, up in _pairs(seed, shape):
        prefix = f"diffusion_model.blocks.{block}.{original}"
        state[f"{prefix}.lora_down.weight"] = down.contiguous()
        state[f"{prefix}.lora_up.weight"] = up.contiguous()
        state[f"{prefix}.alpha"] = torch.tensor(float(shape.rank))  # scale alpha / rank = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def build_distilled_transformer(tiny_wan_dir: Path, path: Path, seed: int = 1) -> Path:
    """A "distilled" transformer for the tiny Wan: the same architecture, other random weights,
    saved as a diffusers model directory (``config.json`` + safetensors)."""
    import torch
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel.from_pretrained(tiny_wan_dir, subfolder="transformer")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05)
    model.save_pretrained(path)
    return path
