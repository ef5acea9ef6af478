"""Tiny random-weight checkpoints in the real Hub layouts, built at test time.

Nothing here is downloaded: tokenizers are trained on a few lines, models get random weights,
and everything is written with ``save_pretrained`` so the project's loader reads it exactly as
it would read a Hub snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "кот играет на пианино в космосе, мультяшный стиль",
    "собака бежит по пляжу на закате",
    "a cat plays the piano in space, cartoon style",
    "a dog runs along the beach at sunset",
    "красивый город ночью, неоновые огни, дождь",
    "a beautiful city at night, neon lights, rain",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,!?-\"'",
]


def _t5_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return T5TokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0
    )


def build_tiny_wan(path: Path) -> Path:
    """Write a 2-layer ``WanPipeline`` to ``path`` (the layout of Wan-AI/Wan2.1-T2V-1.3B-Diffusers)."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    tokenizer = _t5_tokenizer()
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            vocab_size=len(tokenizer),
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=1024,
    )
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0
    )
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_marian(path: Path) -> Path:
    """Write a 1+1-layer ``MarianMTModel`` with sentencepiece vocabularies (the opus-mt layout)."""
    import sentencepiece as spm
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    torch.manual_seed(0)
    path.mkdir(parents=True, exist_ok=True)
    corpus = path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 8), encoding="utf-8")
    for name in ("source", "target"):
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(path / name),
            vocab_size=200,
            character_coverage=1.0,
            model_type="unigram",
            bos_id=-1,
            eos_id=1,
            pad_id=-1,
            unk_id=2,
            minloglevel=2,
            hard_vocab_limit=False,
        )
        (path / f"{name}.model").rename(path / f"{name}.spm")
        (path / f"{name}.vocab").unlink()
    corpus.unlink()
    sp = spm.SentencePieceProcessor(model_file=str(path / "source.spm"))
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for i in range(sp.get_piece_size()):
        vocab.setdefault(sp.id_to_piece(i), len(vocab))
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(path / "source.spm"),
        target_spm=str(path / "target.spm"),
        vocab=str(path / "vocab.json"),
        source_lang="ru",
        target_lang="en",
        model_max_length=64,
    )
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        forced_eos_token_id=1,
    )
    model = MarianMTModel(config)
    model.generation_config.max_length = 32
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _t5_encoder(tokenizer):
    """A 2-layer ``T5EncoderModel`` (LTX-Video and CogVideoX read T5 v1.1 XXL)."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            feed_forward_proj="gated-gelu",
            vocab_size=len(tokenizer),
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    )


def build_tiny_ltx(path: Path) -> Path:
    """Write a 1-layer ``LTXPipeline`` to ``path`` (the layout of Lightricks/LTX-Video).

    The VAE compresses like the real one (patch 4 and three 2x scalings: 32x in space, 8x in
    time), so the preset's rules (sides a multiple of 32, 8k+1 frames) meet a real constraint.
    """
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    tokenizer = _t5_tokenizer()
    text_encoder = _t5_encoder(tokenizer)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=32,
    )
    vae = AutoencoderKLLTXVideo(
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    pipe = LTXPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )
    pipe.save_pretrained(path)
    return path


def build_tiny_cogvideox(path: Path) -> Path:
    """Write a 1-layer ``CogVideoXPipeline`` to ``path`` (the layout of THUDM/CogVideoX-2b).

    Its ``__call__`` leaves height, width and frames to the transformer's ``sample_*`` config
    (kept as in CogVideoX-2b: 720x480, 49 frames), which is what the presets read.
    """
    import torch
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    torch.manual_seed(0)
    tokenizer = _t5_tokenizer()
    text_encoder = _t5_encoder(tokenizer)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=8,  # 3D sin-cos position embeddings need heads x dim divisible by 16
        in_channels=4,
        out_channels=4,
        time_embed_dim=8,
        text_embed_dim=32,
        num_layers=1,
        sample_width=90,
        sample_height=60,
        sample_frames=49,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=226,
    )
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    scheduler = CogVideoXDDIMScheduler(
        beta_end=0.012,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=3.0,
        timestep_spacing="trailing",
    )
    pipe = CogVideoXPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(path)
    return path


QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2's pre-tokenizer pattern: words, single digits, punctuation runs, whitespace.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _qwen_tokenizer(template_lines: list[str]):
    """A byte-level BPE with Qwen2's pre-tokenizer and special tokens.

    Trained on Kandinsky 5's system prompt too, so that prompt is about as many tokens as with
    the real Qwen2.5 vocabulary (the pipeline drops its first 128 token embeddings).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=QWEN_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((template_lines + CORPUS) * 8, trainer=trainer)
    return Qwen2TokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
    )


def _clip_tokenizer():
    """A character-level ``CLIPTokenizer`` (byte-level alphabet, no merges)."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in pre_tokenizers.ByteLevel.alphabet():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(f"{char}</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_kandinsky5(path: Path) -> Path:
    """Write a 1+1-block ``Kandinsky5T2VPipeline`` to ``path``.

    The layout of kandinskylab/Kandinsky-5.0-T2V-Lite-sft-5s-Diffusers: a Qwen2.5-VL text encoder
    whose ``tokenizer`` folder holds a ``Qwen2VLProcessor`` (tokenizer files plus the image
    processor's ``preprocessor_config.json``), a CLIP text encoder, the HunyuanVideo VAE. The
    processor's video half needs torchvision, which the tests lack, so the pipeline is built
    with the plain tokenizer and the folder and ``model_index.json`` are completed as the Hub
    checkpoint has them.
    """
    import torch
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        Kandinsky5T2VPipeline,
        Kandinsky5Transformer3DModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    torch.manual_seed(0)
    template = Kandinsky5T2VPipeline(*([None] * 7)).prompt_template
    tokenizer = _qwen_tokenizer(template.replace("{}", "").splitlines())
    ids = tokenizer.convert_tokens_to_ids
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config={
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "rope_scaling": {
                    "mrope_section": [1, 1, 2],
                    "rope_type": "default",
                    "type": "default",
                },
                "rope_theta": 1000000.0,
                "vocab_size": len(tokenizer),
                "bos_token_id": ids("<|endoftext|>"),
                "eos_token_id": ids("<|im_end|>"),
            },
            vision_config={
                "depth": 1,
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_heads": 2,
                "out_hidden_size": 16,
            },
            hidden_size=16,
            vocab_size=len(tokenizer),
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            image_token_id=ids("<|image_pad|>"),
            video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"),
            vision_end_token_id=ids("<|vision_end|>"),
            vision_token_id=ids("<|vision_pad|>"),
        )
    )
    tokenizer_2 = _clip_tokenizer()
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=len(tokenizer_2),
            max_position_embeddings=77,
            projection_dim=32,
        )
    )
    transformer = Kandinsky5Transformer3DModel(
        in_visual_dim=4,
        in_text_dim=16,  # the Qwen2.5-VL hidden size
        in_text_dim2=32,  # the CLIP hidden size
        time_dim=32,
        out_visual_dim=4,
        patch_size=(1, 2, 2),
        model_dim=48,
        ff_dim=64,
        num_text_blocks=1,
        num_visual_blocks=1,
        axes_dims=(8, 8, 8),
        visual_cond=False,
    )
    vae = AutoencoderKLHunyuanVideo(
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=4,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=5.0)
    pipe = Kandinsky5T2VPipeline(
        transformer=transformer,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        scheduler=scheduler,
    )
    pipe.save_pretrained(path)
    Qwen2VLImageProcessorPil().save_pretrained(path / "tokenizer")
    index_path = path / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index["tokenizer"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2), encoding="utf-8")
    return path
