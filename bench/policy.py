"""What the content policy costs per job: the blocked-words check of a prompt, and the
``NSFW_MODEL`` check of a finished video (frame decoding + classification), each a median.

The word list is synthetic (``--entries`` random Cyrillic and Latin words and two-word phrases),
checked against prompts of ``MAX_PROMPT_CHARS`` (1000) characters that match nothing — the worst
case: every word is looked up. The classifier is a random-weight ViT-Base/16 at 224 px (the shape
of ``Falconsai/nsfw_image_detection``, built in memory: no download), run on the 4 frames the bot
samples from an 832x480x81 MP4 encoded by the project's exporter (bench/export.py's smooth
synthetic clip).

    python bench/policy.py --out bench/results/policy.json    # about a minute on 2 CPU cores
    python bench/policy.py --tiny                              # CI smoke, a few seconds
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.export import synthetic_clip
from bench.report import JsonReport, fmt, light_machine_info, log, median
from bot.policy.words import WordMatcher, parse_entries
from pipeline.export import export_mp4
from pipeline.nsfw import NsfwClassifier, sample_frames

CYRILLIC = "абвгдежзийклмнопрстуфхцчшщыэюя"
LATIN = "abcdefghijklmnopqrstuvwxyz"


def random_word(rng: random.Random, letters: str) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(3, 10)))


def word_list(entries: int, rng: random.Random) -> list[str]:
    lines = []
    for index in range(entries):
        letters = CYRILLIC if index % 2 else LATIN
        words = [random_word(rng, letters) for _ in range(1 if index % 5 else 2)]
        lines.append(" ".join(words))
    return lines


def prompt(chars: int, rng: random.Random) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(random_word(rng, CYRILLIC if rng.random() < 0.7 else LATIN))
    return " ".join(words)[:chars]


def bench_words(entries: int, prompts: int, chars: int, report: JsonReport) -> None:
    rng = random.Random(0)
    lines = word_list(entries, rng)
    start = time.perf_counter()
    matcher = WordMatcher(parse_entries(lines))
    load = time.perf_counter() - start
    texts = [prompt(chars, rng) for _ in range(prompts)]
    seconds = []
    for text in texts:
        start = time.perf_counter()
        matcher.match(text)
        seconds.append(time.perf_counter() - start)
    figures = {
        "entries": entries,
        "prompt_chars": chars,
        "load_s": load,
        "check_ms_median": 1000 * (median(seconds) or 0.0),
        "check_ms_max": 1000 * max(seconds),
    }
    report["words"] = figures
    log(
        f"blocked words: {entries} entries loaded in {fmt(load, '.3f')} s; a {chars}-character "
        f"prompt checked in {fmt(figures['check_ms_median'], '.2f')} ms (median), "
        f"{fmt(figures['check_ms_max'], '.2f')} ms (max)"
    )


def classifier(tiny: bool, device: str) -> NsfwClassifier:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    size = 32 if tiny else 224
    config = ViTConfig(
        image_size=size,
        patch_size=8 if tiny else 16,
        hidden_size=16 if tiny else 768,
        num_hidden_layers=1 if tiny else 12,
        num_attention_heads=2 if tiny else 12,
        intermediate_size=32 if tiny else 3072,
        num_labels=2,
        id2label={0: "normal", 1: "nsfw"},
        label2id={"normal": 0, "nsfw": 1},
    )
    torch.manual_seed(0)
    model = ViTForImageClassification(config).to(device).eval()
    processor = ViTImageProcessor(size={"height": size, "width": size})
    return NsfwClassifier(processor, model, device)


def bench_nsfw(tiny: bool, device: str, repeats: int, report: JsonReport) -> None:
    width, height, frames = (64, 64, 9) if tiny else (832, 480, 81)
    clip = synthetic_clip(width, height, frames)  # smooth, as generated video is
    with tempfile.TemporaryDirectory() as tmp:
        video = export_mp4(clip, Path(tmp) / "clip.mp4", fps=16).path
        model = classifier(tiny, device)
        model.check_video(video)  # warm-up
        decode, classify = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            sampled = sample_frames(video)
            middle = time.perf_counter()
            model.score_frames(sampled)
            decode.append(middle - start)
            classify.append(time.perf_counter() - middle)
    figures = {
        "video": f"{width}x{height}x{frames}",
        "model": "tiny ViT" if tiny else "ViT-Base/16 224 px (random weights)",
        "device": device,
        "decode_s_median": median(decode),
        "classify_s_median": median(classify),
    }
    report["nsfw"] = figures
    log(
        f"NSFW check of a {figures['video']} MP4 with {figures['model']} on {device}: "
        f"decode 4 frames {fmt(figures['decode_s_median'], '.3f')} s + classify "
        f"{fmt(figures['classify_s_median'], '.3f')} s (medians of {repeats})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke check")
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = JsonReport(args.out, machine=light_machine_info())
    bench_words(50 if args.tiny else args.entries, 5 if args.tiny else 200, 1000, report)
    bench_nsfw(args.tiny, args.device, 2 if args.tiny else 5, report)


if __name__ == "__main__":
    main()
