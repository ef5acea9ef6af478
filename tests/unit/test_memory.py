"""The memory-mode chooser is a pure function of free VRAM and component sizes."""

from __future__ import annotations

import pytest

from pipeline.memory import GIB, choose_memory_mode, headroom, needs_vae_tiling

WAN_1_3B = {"transformer": int(2.8 * GIB), "text_encoder": int(11.4 * GIB), "vae": int(0.25 * GIB)}
WAN_14B = {"transformer": int(28.6 * GIB), "text_encoder": int(11.4 * GIB), "vae": int(0.25 * GIB)}


@pytest.mark.parametrize(
    ("free_gib", "sizes", "mode"),
    [
        (139, WAN_14B, "resident"),  # H200
        (79, WAN_14B, "resident"),  # H100 80 GB
        (47, WAN_14B, "model_offload"),  # 48 GB card: the transformer alone fits
        (23, WAN_14B, "group_offload"),  # 24 GB card: not even the transformer
        (23, WAN_1_3B, "resident"),
        (16, WAN_1_3B, "model_offload"),
        (8, WAN_1_3B, "group_offload"),
        (0, WAN_1_3B, "group_offload"),
        (100, {}, "resident"),
    ],
)
def test_choose_memory_mode(free_gib: float, sizes: dict[str, int], mode: str) -> None:
    assert choose_memory_mode(int(free_gib * GIB), sizes) == mode


def test_more_memory_never_picks_a_slower_mode() -> None:
    order = ["group_offload", "model_offload", "resident"]
    picks = [order.index(choose_memory_mode(g * GIB, WAN_14B)) for g in range(0, 160, 4)]
    assert picks == sorted(picks)


def test_headroom_and_tiling() -> None:
    assert headroom(WAN_1_3B) >= 6 * GIB
    assert needs_vae_tiling("model_offload", 100 * GIB, WAN_1_3B)
    assert needs_vae_tiling("group_offload", 100 * GIB, WAN_1_3B)
    assert not needs_vae_tiling("resident", 139 * GIB, WAN_1_3B)
    assert needs_vae_tiling("resident", 22 * GIB, WAN_1_3B)  # fits, but little room to decode
