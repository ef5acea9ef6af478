"""bench/gpu_tools.py: the random-weight Wan it builds is in the dtypes a real load gives."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.gpu_tools import build_wan

TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=256,
    ffn_dim=32,
    num_layers=3,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)
TEXT_ENCODER = dict(
    d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8
)
VAE = dict(
    base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
    temperal_downsample=[False, True, True],
)  # fmt: skip


def test_build_wan_keeps_in_float32_what_from_pretrained_keeps(tmp_path: Path) -> None:
    from diffusers import WanTransformer3DModel

    pipe = build_wan(TRANSFORMER, TEXT_ENCODER, VAE, dtype=torch.bfloat16)
    built = {name: p.dtype for name, p in pipe.transformer.named_parameters()}
    pipe.transformer.save_pretrained(tmp_path / "transformer")
    loaded = WanTransformer3DModel.from_pretrained(
        tmp_path / "transformer", torch_dtype=torch.bfloat16
    )
    expected = {name: p.dtype for name, p in loaded.named_parameters()}
    assert built == expected
    kept = sorted(name for name, dtype in built.items() if dtype == torch.float32)
    assert "blocks.2.norm2.weight" in kept and "scale_shift_table" in kept  # not vacuous
    assert any(dtype == torch.bfloat16 for dtype in built.values())
