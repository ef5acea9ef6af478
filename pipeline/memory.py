"""Where the pipeline's weights live on a GPU: resident, model offload or group offload.

The choice is a pure function of free VRAM and the components' sizes, so it can be tested without
a GPU; applying it uses diffusers' own opt-in calls (``enable_model_cpu_offload``,
``enable_group_offload``/``apply_group_offloading``, ``vae.enable_tiling``).
"""

from __future__ import annotations

from typing import Any

GIB = 1024**3
MEMORY_MODES = ("resident", "model_offload", "group_offload")

# Room for activations next to the weights: attention over a few thousand video tokens, the
# text encoder's hidden states and, without tiling, a VAE decode of the whole clip.
MIN_HEADROOM = 6 * GIB
HEADROOM_FRACTION = 0.2


def headroom(component_bytes: dict[str, int]) -> int:
    """Bytes to keep free for activations beside the given weights."""
    return max(MIN_HEADROOM, int(HEADROOM_FRACTION * sum(component_bytes.values())))


def choose_memory_mode(free_bytes: int, component_bytes: dict[str, int]) -> str:
    """``resident`` if everything fits with headroom; ``model_offload`` if each component fits on
    its own (they take turns on the GPU; activations are the denoiser's and the VAE's, the text
    encoder's are small); else ``group_offload`` (layers stream in)."""
    total = sum(component_bytes.values())
    room = headroom(component_bytes)
    if free_bytes >= total + room:
        return "resident"
    denoiser = component_bytes.get("transformer", component_bytes.get("unet", 0))
    others = [size for name, size in component_bytes.items() if name not in ("transformer", "unet")]
    one_at_a_time = max(denoiser + room, int(1.1 * max(others, default=0)))
    if free_bytes >= one_at_a_time:
        return "model_offload"
    return "group_offload"


def needs_vae_tiling(mode: str, free_bytes: int, component_bytes: dict[str, int]) -> bool:
    """Tile the VAE decode whenever weights do not sit comfortably resident."""
    if mode != "resident":
        return True
    return free_bytes < sum(component_bytes.values()) + 2 * headroom(component_bytes)


def component_bytes(pipe: Any, bytes_per_param: int) -> dict[str, int]:
    """Weight bytes of each torch module of ``pipe`` at the dtype it will run in."""
    import torch

    sizes: dict[str, int] = {}
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            params = sum(p.numel() for p in component.parameters())
            buffers = sum(b.numel() * b.element_size() for b in component.buffers())
            sizes[name] = params * bytes_per_param + buffers
    return sizes


def apply_memory_mode(pipe: Any, mode: str, device: str, *, vae_tiling: bool) -> None:
    """Place ``pipe`` on ``device`` in ``mode``; VAE tiling as asked."""
    import torch

    if mode == "resident":
        pipe.to(device)
    elif mode == "model_offload":
        pipe.enable_model_cpu_offload(device=device)
    elif mode == "group_offload":
        from diffusers.hooks import apply_group_offloading

        onload = torch.device(device)
        use_stream = onload.type == "cuda"
        for component in pipe.components.values():
            if not isinstance(component, torch.nn.Module):
                continue
            if hasattr(component, "enable_group_offload"):  # diffusers models
                component.enable_group_offload(
                    onload_device=onload,
                    offload_device=torch.device("cpu"),
                    offload_type="leaf_level",
                    use_stream=use_stream,
                )
            else:  # transformers text encoders
                apply_group_offloading(
                    component,
                    onload_device=onload,
                    offload_type="leaf_level",
                    use_stream=use_stream,
                )
    else:
        raise ValueError(f"unknown memory mode {mode!r} (allowed: auto, {', '.join(MEMORY_MODES)})")
    vae = getattr(pipe, "vae", None)
    if vae_tiling and vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
