"""A live preview of what a render is forming, cheap enough to run during denoising.

Why and how: ``callback_on_step_end`` hands us the latents after every step. With flow matching
(Wan, LTX, every ``FlowMatch*`` sampler, UniPC with ``use_flow_sigmas``) a latent at noise level
σ is ``x_σ = (1 − σ)·x0 + σ·ε``, so the velocity between two consecutive latents is
``v = (x_next − x_prev) / (σ_next − σ_prev)`` and the clean estimate is ``x0 = x_next − σ_next·v``
— what the video will look like, not the noise it still holds. For other samplers the current
latent is shown as it is.

Decoding that estimate honestly but cheaply:

- **Projection** (known families): a fixed linear map latent channels → RGB on one latent frame,
  at the latent's resolution (1/8 of the video's sides), then scaled up to at most
  :data:`MAX_SIDE` px. A few thousand multiply-adds: no VAE, no extra GPU memory.
- **VAE** (unknown families): one latent frame, spatially halved until it decodes to at most
  :data:`MAX_SIDE` px, through the pipeline's own VAE. Costlier, so it runs less often.

Previews are rate-limited twice: at least :data:`MIN_STEPS` steps apart and at least
``min_interval`` seconds apart (the status message is edited every 3 s at most, so a preview
made more often would never be seen), never at step 0 (nothing formed yet) nor at the last step
(the video follows). Any failure disables the preview for the rest of the run; it never costs a
job. The cost is measured by ``bench/preview.py`` (docs/performance.md).

The output is small JPEG bytes (:class:`pipeline.progress.PreviewImage`): the seam between the worker, which
makes them, and whoever shows them (the bot's status message), which knows nothing of latents.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

from pipeline.progress import PreviewImage

log = logging.getLogger(__name__)

MAX_SIDE = 320
"""Longest side of a preview, px (Telegram shows a status photo small anyway)."""
MIN_STEPS = 3
"""Denoising steps between two previews (projection)."""
VAE_MIN_STEPS = 6
"""Steps between two previews decoded by the VAE (the costlier fallback)."""
MIN_INTERVAL = 2.5
"""Seconds between two previews: a little under the status message's edit throttle (3 s)."""
JPEG_QUALITY = 70

# Wan 2.1 latent → RGB projection (16 latent channels → R, G, B, and a bias), applied to the
# normalised latents the diffusers pipeline denoises ((z − mean) / std, as ComfyUI's
# ``process_in``). Source: ComfyUI, comfy/latent_formats.py, class ``Wan21``
# (https://github.com/comfyanonymous/ComfyUI/blob/v0.3.52/comfy/latent_formats.py; the values are
# unchanged in later versions). Wan 2.2 TI2V (48 channels) has no projection here: VAE fallback.
WAN21_RGB_FACTORS: tuple[tuple[float, float, float], ...] = (
    (-0.1299, -0.1692, 0.2932),
    (0.0671, 0.0406, 0.0442),
    (0.3568, 0.2548, 0.1747),
    (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328),
    (0.0296, -0.0956, -0.0665),
    (-0.3477, -0.4059, -0.2925),
    (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364),
    (-0.1293, 0.0740, 0.1636),
    (0.0680, 0.3019, 0.1128),
    (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699),
    (0.0060, -0.0633, 0.0005),
    (0.3477, 0.2275, 0.2950),
    (0.1984, 0.0913, 0.1861),
)
WAN21_RGB_BIAS = (-0.1835, -0.0868, -0.3360)

PROJECTIONS: dict[tuple[str, int], tuple[tuple[tuple[float, float, float], ...], tuple[float, ...]]]
PROJECTIONS = {("wan", 16): (WAN21_RGB_FACTORS, WAN21_RGB_BIAS)}
"""(family, latent channels) → (factors, bias)."""


def is_flow_matching(scheduler: Any) -> bool:
    """Whether ``scheduler`` samples a flow-matching path (σ from 1 = noise to 0 = clean)."""
    config = getattr(scheduler, "config", None)
    if config is None:
        return False
    if "FlowMatch" in type(scheduler).__name__ or config.get("use_flow_sigmas", False):
        return True
    return config.get("prediction_type") == "flow_prediction"


def fit_size(width: int, height: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``width``×``height`` scaled (up or down) so the longest side is ``max_side``."""
    scale = max_side / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_jpeg(rgb: Any, step: int, size: tuple[int, int] | None = None) -> PreviewImage:
    """uint8 ``[H, W, 3]`` array → a JPEG of at most :data:`MAX_SIDE` px (``size``: the video's
    width and height, whose aspect the preview keeps)."""
    from PIL import Image

    image = Image.fromarray(rgb)
    width, height = size or image.size
    target = fit_size(width, height)
    if image.size != target:
        image = image.resize(target, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return PreviewImage(buffer.getvalue(), target[0], target[1], step)


class LatentPreview:
    """Turns the latents of ``callback_on_step_end`` into a :class:`PreviewImage` now and then.

    One instance per run: it remembers one latent frame of the previous step and its σ. Call
    :meth:`step` from the callback with the step index and the latents; it returns a preview or
    None (not due, or not possible)."""

    def __init__(
        self,
        pipe: Any,
        family: str,
        *,
        size: tuple[int, int],
        min_interval: float = MIN_INTERVAL,
        min_steps: int | None = None,
        method: str | None = None,
    ) -> None:
        """``size``: the video's (width, height). ``method``: ``projection`` or ``vae``; None
        picks the projection where the family has one."""
        self.pipe = pipe
        self.size = size
        self.min_interval = min_interval
        self.scheduler = getattr(pipe, "scheduler", None)
        self.flow = is_flow_matching(self.scheduler)
        self._family = family
        self._method = method
        self._projection: Any = None
        self._prev: Any = None
        self._prev_sigma: float | None = None
        self._last_time = float("-inf")
        self._last_step: int | None = None
        self._min_steps = min_steps
        self.disabled = False
        self.made = 0

    # ---------------------------------------------------------------- the callback side

    def step(self, index: int, total: int, latents: Any) -> PreviewImage | None:
        """After step ``index`` (0-based) of ``total``: maybe a preview of the clean estimate."""
        if self.disabled or latents is None:
            return None
        try:
            return self._step(index, total, latents)
        except Exception as exc:  # a preview never costs a job
            log.warning("preview disabled for this run: %s", exc)
            self.disabled = True
            return None

    def _step(self, index: int, total: int, latents: Any) -> PreviewImage | None:
        if latents.ndim != 5:  # packed ([B, seq, C]) or unusual latents: nothing to slice
            raise ValueError(f"latents of shape {tuple(latents.shape)} are not [B, C, F, H, W]")
        method = self.method(latents.shape[1])
        frame = latents[:1, :, latents.shape[2] // 2]  # the middle latent frame, [1, C, h, w]
        sigma = self._sigma(index + 1)
        prev, prev_sigma = self._prev, self._prev_sigma
        self._prev, self._prev_sigma = frame.detach().clone(), sigma
        if not self._due(index, total, method):
            return None
        estimate = frame
        flow = self.flow and sigma is not None and prev is not None and prev_sigma is not None
        if flow and abs(prev_sigma - sigma) > 1e-6:  # type: ignore[operator]
            velocity = (frame - prev) / (sigma - prev_sigma)
            estimate = frame - sigma * velocity
        rgb = self._project(estimate) if method == "projection" else self._decode(estimate)
        self._last_time = time.monotonic()
        self._last_step = index
        self.made += 1
        return to_jpeg(rgb, index + 1, self.size)

    def method(self, channels: int) -> str:
        if self._method is None:
            known = (self._family, channels) in PROJECTIONS
            self._method = "projection" if known else "vae"
        return self._method

    def _due(self, index: int, total: int, method: str) -> bool:
        if index == 0 or index + 1 >= total:
            return False
        gap = self._min_steps or (MIN_STEPS if method == "projection" else VAE_MIN_STEPS)
        if self._last_step is not None and index - self._last_step < gap:
            return False
        return time.monotonic() - self._last_time >= self.min_interval

    def _sigma(self, index: int) -> float | None:
        """σ after step ``index - 1`` (the scheduler's own schedule; None if it has none)."""
        sigmas = getattr(self.scheduler, "sigmas", None)
        if sigmas is None or not self.flow or index >= len(sigmas):
            return None
        return float(sigmas[index])

    # ---------------------------------------------------------------- decoding

    def _project(self, latent: Any) -> Any:
        """[1, C, h, w] → uint8 [h, w, 3] by the family's fixed linear map."""
        import torch

        if self._projection is None:
            factors, bias = PROJECTIONS[(self._family, latent.shape[1])]
            self._projection = (
                torch.tensor(factors, dtype=torch.float32, device=latent.device),
                torch.tensor(bias, dtype=torch.float32, device=latent.device),
            )
        factors, bias = self._projection
        channels, height, width = latent.shape[1:]
        # A plain matrix product on a contiguous [h*w, C] copy: einsum on the strided slice of
        # the 5-D latents was ~100x slower on CPU (7 ms against 0.05 ms).
        pixels = latent[0].float().reshape(channels, -1).t().contiguous()
        rgb = (pixels @ factors + bias).reshape(height, width, 3)
        return ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()

    def _decode(self, latent: Any) -> Any:
        """[1, C, h, w] → uint8 [H, W, 3] through the pipeline's VAE, at low resolution."""
        import torch
        import torch.nn.functional as F

        vae = getattr(self.pipe, "vae", None)
        if vae is None:
            raise ValueError("no VAE to decode a preview with")
        config = vae.config
        x = latent.float()
        scale = getattr(self.pipe, "vae_scale_factor_spatial", 8) or 8
        while max(x.shape[-2:]) * scale > MAX_SIDE and min(x.shape[-2:]) > 2:
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        mean, std = config.get("latents_mean"), config.get("latents_std")
        if mean is not None and std is not None:
            view = (1, len(mean), 1, 1)
            x = x * torch.tensor(std, device=x.device).view(view)
            x = x + torch.tensor(mean, device=x.device).view(view)
        elif config.get("scaling_factor"):
            x = x / float(config["scaling_factor"]) + float(config.get("shift_factor") or 0.0)
        x = x.unsqueeze(2).to(vae.dtype)  # one latent frame: [1, C, 1, h, w]
        with torch.no_grad():
            decoded = vae.decode(x, return_dict=False)[0]  # [1, 3, T, H, W] in [-1, 1]
        image = decoded[0, :, 0].float().permute(1, 2, 0)
        return ((image + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
