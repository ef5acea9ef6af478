"""A tiny random-weight ViT image classifier in the real Hub layout (``config.json``,
``model.safetensors``, ``preprocessor_config.json``), for ``NSFW_MODEL`` tests.

Its verdict is made deterministic through the classifier head: zero weights and a bias that puts
all the probability on one label (``force``), whatever the image. ``labels`` sets ``id2label``
(the real checkpoints' names: ``Falconsai/nsfw_image_detection`` has ``normal``/``nsfw``).
"""

from __future__ import annotations

from pathlib import Path


def build_tiny_classifier(
    directory: Path,
    *,
    force: str,
    labels: tuple[str, ...] = ("normal", "nsfw"),
    image_size: int = 32,
) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(
        image_size=image_size,
        patch_size=8,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = ViTForImageClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-20.0)
        model.classifier.bias[labels.index(force)] = 20.0
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    ViTImageProcessor(
        size={"height": image_size, "width": image_size},
        do_resize=True,
        do_normalize=True,
    ).save_pretrained(directory)
    return directory
