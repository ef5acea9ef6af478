"""A tiny random image-to-video pipeline in the real checkpoint layout, built at test time.

Wan 2.2 TI2V 5B's layout (``Wan-AI/Wan2.2-TI2V-5B-Diffusers``): a ``WanImageToVideoPipeline``
with ``expand_timesteps=True`` and no image encoder — the photo is VAE-encoded into the first
latent frame, and the transformer denoises the frames after it. Random weights, tokenizer trained
on a few lines, written with ``save_pretrained`` so the project's loader reads it as it would read
a Hub snapshot.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.tiny_models import _t5_tokenizer


def build_tiny_wan_i2v(path: Path) -> Path:
    """Write a 2-layer TI2V-style ``WanImageToVideoPipeline`` to ``path``."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    tokenizer = _t5_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, vocab_size=len(tokenizer), pad_token_id=0,
            eos_token_id=1, decoder_start_token_id=0,
        )
    )  # fmt: skip
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=1024,
    )  # fmt: skip
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )  # fmt: skip
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    pipe = WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
        image_encoder=None,
        image_processor=None,
        expand_timesteps=True,
    )
    pipe.save_pretrained(path)
    return path
