"""Photo → video in the pipeline: a tiny random Wan image-to-video model (Wan 2.2 TI2V layout,
built at test time and loaded through the project's loader) animates the photo it is given."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from pipeline.__main__ import main
from pipeline.errors import ModelLoadError
from pipeline.generator import GeneratorConfig
from pipeline.image import prepare_image
from pipeline.options import OptionOverrides, resolve_options
from pipeline.text2video import TextToVideo
from tests.fakes import images

RED = (230, 20, 20)
BLUE = (20, 20, 230)


@pytest.fixture(scope="module")
def t2v(tiny_wan_dir: Path, tiny_wan_i2v_dir: Path) -> TextToVideo:
    torch.set_num_threads(1)
    return TextToVideo.load(
        GeneratorConfig(model=str(tiny_wan_dir), device="cpu"),
        translator_model="none",
        image_config=GeneratorConfig(model=str(tiny_wan_i2v_dir), device="cpu"),
    )


def decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.parametrize("color", [RED, BLUE], ids=["red", "blue"])
def test_photo_becomes_a_video_that_starts_from_it(
    t2v: TextToVideo, tmp_path: Path, color: tuple[int, int, int]
) -> None:
    model = t2v.image_model
    assert model is not None
    fitted = prepare_image(images.solid(320, 180, color), 64 * 64, model.limits)
    assert (fitted.width, fitted.height) == (80, 64)  # 64 px: the model's smallest side
    options = resolve_options(
        "кот идёт",
        OptionOverrides(seed=3, steps=2, frames=9, width=fitted.width, height=fitted.height),
        model.defaults,
        model.limits,
    )
    seen: list[torch.Tensor] = []
    encoder = t2v.image_generator.pipe.vae.encoder
    handle = encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        result = t2v.run(options, tmp_path / "out.mp4", image=fitted.data)
    finally:
        handle.remove()
    frames = decoded(result.video.path)
    assert frames.shape == (9, 64, 80, 3)
    assert (result.video.width, result.video.height, result.video.frames) == (80, 64, 9)
    # The random VAE cannot be expected to keep colours; what it was given is the photo.
    assert len(seen) == 1 and tuple(seen[0].shape[-2:]) == (64, 80) and seen[0].shape[2] == 1
    mean = ((seen[0][0, :, 0].mean(dim=(1, 2)) + 1) * 127.5).tolist()
    assert mean == pytest.approx(color, abs=3)


def test_text_requests_still_use_the_text_model(t2v: TextToVideo, tmp_path: Path) -> None:
    options = resolve_options(
        "кот", OptionOverrides(seed=1, steps=2, frames=5, width=64, height=64),
        t2v.defaults, t2v.limits,
    )  # fmt: skip
    result = t2v.run(options, tmp_path / "text.mp4")
    assert decoded(result.video.path).shape == (5, 64, 64, 3)
    with pytest.raises(ValueError, match="animates a photo"):
        t2v.image_generator.generate(options)


def test_text_model_refuses_an_image(tiny_wan_dir: Path) -> None:
    only_text = TextToVideo.load(
        GeneratorConfig(model=str(tiny_wan_dir), device="cpu"), translator_model="none"
    )
    assert only_text.image_model is None
    options = resolve_options(
        "кот", OptionOverrides(seed=1, steps=1, frames=5, width=64, height=64),
        only_text.defaults, only_text.limits,
    )  # fmt: skip
    with pytest.raises(ModelLoadError, match="I2V_MODEL"):
        only_text.run(options, Path("unused.mp4"), image=images.solid(64, 64, RED, "PNG"))


def test_i2v_model_must_take_an_image(tiny_wan_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="not an image-to-video pipeline"):
        TextToVideo.load(
            GeneratorConfig(model=str(tiny_wan_dir), device="cpu"),
            translator_model="none",
            image_config=GeneratorConfig(model=str(tiny_wan_dir), device="cpu"),
        )


def test_cli_animates_a_portrait_photo(
    tiny_wan_i2v_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(images.rotated_jpeg(160, 90, orientation=6))  # shown as 90x160
    out = tmp_path / "out.mp4"
    code = main(
        ["кот", "--image", str(photo), "--i2v-model", str(tiny_wan_i2v_dir), "-o", str(out),
         "--steps", "2", "--frames", "5", "--size", "64x64", "--device", "cpu",
         "--translator", "none", "-q"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    frames = decoded(out)
    assert frames.shape[0] == 5 and frames.shape[1] > frames.shape[2]  # portrait: 9:16
    assert "(9:16)" in printed


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (images.NOT_AN_IMAGE, "not a JPEG"), (images.png_bomb(), "pixels")],
    ids=["zero-byte", "pdf", "bomb"],
)
def test_cli_bad_photo_is_one_line_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(content)
    code = main(["кот", "--image", str(photo), "--i2v-model", str(tmp_path / "no-such-model")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("fixture", "pipeline_class"),
    [
        ("tiny_wan21_i2v_dir", "WanImageToVideoPipeline"),  # CLIP image encoder, Wan 2.1 I2V
        ("tiny_ltx_i2v_dir", "LTXImageToVideoPipeline"),
    ],
)
def test_other_image_to_video_families(
    fixture: str, pipeline_class: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Wan 2.1 I2V (a CLIP vision encoder reads the photo too) and LTX-Video's image-to-video,
    loaded alone (as the CLI's --image does): the photo reaches the VAE, the MP4 decodes to the
    requested frames at the fitted size, within the family's side rule."""
    model_dir: Path = request.getfixturevalue(fixture)
    t2v = TextToVideo.load(GeneratorConfig(model=str(model_dir), device="cpu"), "none")
    model = t2v.image_model
    assert model is not None and type(t2v.generator.pipe).__name__ == pipeline_class
    fitted = prepare_image(images.solid(160, 90, RED), 64 * 64, model.limits)
    assert fitted.width % model.limits.side_multiple == 0
    options = resolve_options(
        "кот",
        OptionOverrides(seed=2, steps=2, frames=9, width=fitted.width, height=fitted.height),
        model.defaults,
        model.limits,
    )
    seen: list[torch.Tensor] = []
    vae_encoder = t2v.generator.pipe.vae.encoder
    handle = vae_encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        result = t2v.run(options, tmp_path / "out.mp4", image=fitted.data)
    finally:
        handle.remove()
    assert decoded(result.video.path).shape == (9, fitted.height, fitted.width, 3)
    first = seen[0][0, :, 0]  # the photo: the first frame of what the VAE encodes
    assert ((first.mean(dim=(1, 2)) + 1) * 127.5).tolist() == pytest.approx(RED, abs=3)
