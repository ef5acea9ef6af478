"""``NSFW_MODEL``: a tiny random ViT classifier in the real layout, loaded through the project's
loader, scoring frames decoded from a real MP4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ModelLoadError
from pipeline.export import export_mp4
from pipeline.nsfw import NsfwClassifier, sample_frames, unsafe_labels
from tests.fakes.tiny_classifier import build_tiny_classifier


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classifiers")
    return {
        "nsfw": build_tiny_classifier(root / "nsfw", force="nsfw"),
        "normal": build_tiny_classifier(root / "normal", force="normal"),
        "five": build_tiny_classifier(
            root / "five", force="porn", labels=("drawings", "hentai", "neutral", "porn", "sexy")
        ),
        "no_unsafe": build_tiny_classifier(root / "sfw", force="cat", labels=("cat", "dog")),
    }


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = np.random.default_rng(0).integers(0, 255, size=(9, 64, 64, 3), dtype=np.uint8)
    return export_mp4(frames, tmp_path_factory.mktemp("video") / "clip.mp4", fps=8).path


def test_the_unsafe_labels_come_from_id2label() -> None:
    assert unsafe_labels({0: "normal", 1: "nsfw"}) == [1]
    assert unsafe_labels({0: "sfw", 1: "NSFW"}) == [1]
    assert unsafe_labels({"0": "drawings", "1": "hentai", "3": "porn", "4": "sexy"}) == [1, 3]
    assert unsafe_labels({0: "safe", 1: "neutral"}) == []


def test_frames_are_sampled_across_the_clip(video: Path) -> None:
    frames = sample_frames(video, 4)
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    assert len(sample_frames(video, 50)) == 9


def test_a_flagged_video(models: dict[str, Path], video: Path) -> None:
    verdict = NsfwClassifier.load(str(models["nsfw"])).check_video(video)
    assert verdict.flagged and verdict.score > 0.99 and verdict.label == "nsfw"


def test_a_clean_video(models: dict[str, Path], video: Path) -> None:
    verdict = NsfwClassifier.load(str(models["normal"])).check_video(video)
    assert not verdict.flagged and verdict.score < 0.01


def test_a_five_class_model_and_the_threshold(models: dict[str, Path], video: Path) -> None:
    verdict = NsfwClassifier.load(str(models["five"]), threshold=0.9).check_video(video)
    assert verdict.flagged and verdict.label == "porn"


def test_a_model_without_an_unsafe_label_is_refused(models: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match="no label meaning nsfw"):
        NsfwClassifier.load(str(models["no_unsafe"]))


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        NsfwClassifier.load(str(tmp_path / "absent"))


def test_the_classifier_follows_the_video_models_device() -> None:
    import torch

    from pipeline.nsfw import pick_device

    assert pick_device("cpu") == "cpu"
    assert pick_device("cuda:1") == "cuda:1"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
