"""Tiny random image-to-video pipelines in the real checkpoint layouts, built at test time.

- ``ti2v``: Wan 2.2 TI2V 5B's layout (``Wan-AI/Wan2.2-TI2V-5B-Diffusers``): a
  ``WanImageToVideoPipeline`` with ``expand_timesteps=True`` and no image encoder — the photo is
  VAE-encoded into the first latent frame, and the transformer denoises the frames after it.
- ``wan21``: Wan 2.1 I2V's layout (``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``): a CLIP vision
  ``image_encoder`` and its ``image_processor``, the photo's latents concatenated to the noise
  (``in_channels`` 16 + 16 + 4 mask channels), as in diffusers' own tests.
- :func:`build_tiny_ltx_i2v`: LTX-Video's ``LTXImageToVideoPipeline`` on the tiny LTX parts.

Random weights, tokenizer trained on a few lines, written with ``save_pretrained`` so the
project's loader reads them as it would read a Hub snapshot.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.tiny_models import _t5_tokenizer


def build_tiny_wan_i2v(path: Path, style: str = "ti2v") -> Path:
    """Write a 2-layer ``WanImageToVideoPipeline`` of ``style`` (``ti2v`` or ``wan21``)."""
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
    wan21 = style == "wan21"
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
        in_channels=36 if wan21 else 16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
        num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=1024, image_dim=4 if wan21 else None,
    )  # fmt: skip
    image_encoder = image_processor = None
    if wan21:
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        image_encoder = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2,
                image_size=32, intermediate_size=16, patch_size=1,
            )
        )  # fmt: skip
        image_processor = CLIPImageProcessor(crop_size=32, size=32)
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
        image_encoder=image_encoder,
        image_processor=image_processor,
        expand_timesteps=not wan21,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_ltx_i2v(path: Path) -> Path:
    """Write a 1-layer ``LTXImageToVideoPipeline`` (the parts of :func:`build_tiny_ltx`)."""
    from diffusers import DiffusionPipeline, LTXImageToVideoPipeline

    from tests.fakes.tiny_models import build_tiny_ltx

    text = DiffusionPipeline.from_pretrained(build_tiny_ltx(path.with_name(path.name + "-t2v")))
    LTXImageToVideoPipeline(**text.components).save_pretrained(path)
    return path
