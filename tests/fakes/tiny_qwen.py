"""A tiny random-weight Qwen2 instruct model in the real checkpoint layout (``PROMPT_MODEL``).

``config.json`` + ``model.safetensors`` + ``generation_config.json`` + the tokenizer files with a
ChatML chat template, as Qwen2.5-*-Instruct ships them, written with ``save_pretrained`` and
loaded back through :meth:`pipeline.improve.PromptImprover.load`. The byte-level BPE is trained
here on a few English lines only, so every token it can produce is plain ASCII: its random text
passes the output check (English, no control characters) and tests of the "improved" path are
deterministic; ``min_new_tokens`` in its generation config keeps it from answering nothing.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LINES = [
    "a red fox runs through a snowy forest at dawn, cinematic wide shot",
    "the camera slowly pans across a quiet city street at night with neon light",
    "close up of a cat playing the piano in a warm lit room, photorealistic",
    "an astronaut walks on the moon, soft light, tracking shot, film grain",
    "waves crash on a rocky shore under a stormy sky, slow motion, aerial view",
]


def build_tiny_qwen(directory: Path, *, min_new_tokens: int = 8, seed: int = 0) -> Path:
    """Write the tiny model to ``directory`` and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS, show_progress=False)
    raw.train_from_iterator(LINES * 4, trainer)
    vocab = raw.get_vocab()
    merges = _merges_of(raw)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=False,
        min_new_tokens=min_new_tokens,
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _merges_of(raw: object) -> list[tuple[str, str]]:
    import json

    data = json.loads(raw.to_str())  # type: ignore[attr-defined]
    merges = data["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
