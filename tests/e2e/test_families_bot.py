"""LTX, CogVideoX and Kandinsky 5 through the bot: the real loader (``load_backend``) on tiny
random-weight checkpoints in their real layouts, a Russian request over the fake Bot API, an MP4
that decodes to the requested frames and size. Kandinsky 5 reads Russian itself: its prompt goes
to the model untranslated (its translator setting points nowhere: loading one would fail the start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.__main__ import build_app
from bot.config import Settings
from tests.fakes.mp4 import read_mp4
from tests.fakes.telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALICE = 1001
FAMILIES = {  # fixture, frames the family accepts at 64x64
    "ltx": ("tiny_ltx_dir", 9),
    "cogvideox": ("tiny_cogvideox_dir", 9),
    "kandinsky5": ("tiny_kandinsky5_dir", 5),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_each_family_renders_a_request_through_the_bot(
    family: str, tg: FakeTelegram, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import asyncio

    fixture, frames = FAMILIES[family]
    model_dir: Path = request.getfixturevalue(fixture)
    settings = Settings(
        _env_file=None,
        bot_token=tg.token,
        telegram_api_url=tg.base_url,
        database_path=tmp_path / "bot.sqlite3",
        video_dir=tmp_path / "videos",
        t2v_model=str(model_dir),
        # Kandinsky 5 must never need a translator: point it at one that cannot load.
        translator_model=str(tmp_path / "no-translator") if family == "kandinsky5" else "none",
        device="cpu",
        default_size="64x64",
        default_frames=frames,
        default_steps=2,
        default_quality="best",
        polling_timeout=1,
        status_min_interval=0.2,
        flood_burst=0,
    )
    app = await build_app(settings)  # the real load_backend → pipeline.text2video
    task = asyncio.create_task(app.run(handle_signals=False))
    try:
        await asyncio.wait_for(app.started.wait(), timeout=30)
        tg.push_message("кот играет на пианино в космосе", user_id=ALICE)
        # PREVIEW=on (the default): the video is edited into the status photo, and each
        # family's latents go through the live preview (a family it cannot read turns it off).
        (video,) = await tg.wait_for(lambda: tg.video_uploads(ALICE), timeout=120)
        # The upload is seen before the «готово» reply and the commit that follow it.
        for _ in range(500):
            job = await app.jobs.get(1)
            if job is not None and job.status == "delivered":
                break
            await asyncio.sleep(0.02)
    finally:
        await app.stop()
        await task
    path = tmp_path / "got.mp4"
    path.write_bytes(video.data)
    mp4 = read_mp4(path)
    assert (len(mp4.frames), mp4.width, mp4.height) == (frames, 64, 64)
    assert job is not None and job.status == "delivered"
    if family == "kandinsky5":
        assert job.prompt_en == "кот играет на пианино в космосе"  # untranslated
