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
