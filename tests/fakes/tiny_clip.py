"""A tiny random CLIP in the real checkpoint layout, for ``bench/quality.py --tiny``.

Saved with ``save_pretrained`` (model, tokenizer, image processor) and loaded back the way a Hub
CLIP id is (``CLIPModel``, ``AutoTokenizer``, ``AutoImageProcessor``). Its scores mean nothing:
it proves the plumbing.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.tiny_models import CORPUS


def build_tiny_clip(path: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPTextConfig,
        CLIPVisionConfig,
        T5TokenizerFast,
    )

    torch.manual_seed(0)
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tokenizer = T5TokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        extra_ids=0, model_max_length=77,
    )  # fmt: skip
    config = CLIPConfig(
        text_config=CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=77, pad_token_id=0, eos_token_id=1,
        ),
        vision_config=CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=8,
        ),
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(path)
    return path
