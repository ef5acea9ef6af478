"""Speed settings, each one diffusers (or torch) call on the denoiser or the pipeline.

Two kinds:

* output-neutral, applied once at load and used by every job: regional ``torch.compile``
  (``COMPILE``, on by default on CUDA) with its on-disk cache, an attention backend
  (``ATTENTION_BACKEND``) and FP8 weights (``QUANTIZE=fp8``: changes numbers in the last digits,
  off by default); the memory mode lives in :mod:`pipeline.memory`;
* per tier (:mod:`pipeline.quality`): MagCache on the base transformer for balanced jobs, and a
  second, step-distilled transformer with its own sampler for fast jobs. :class:`TierSwitch` puts
  the pipeline into the state a job's tier needs, calling diffusers only when the state changes.

Why the compile is not ``compile_repeated_blocks``: that compiles each block's ``__call__``, and
diffusers' cache hooks replace the block's ``forward`` with a ``torch.compiler.disable``d
function, so with MagCache on (the default tier) nothing would run compiled. Compiling the same
blocks' ``forward`` before any hook is registered keeps them compiled under the hooks (the hook
calls the compiled function). ``tests/unit/test_speed.py`` shows both.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

from pipeline.quality import TierSupport

log = logging.getLogger(__name__)

COMPILE_CHOICES = ("auto", "on", "off")
QUANTIZE_CHOICES = ("fp8",)
LORA_ADAPTER = "fast"
FP8_MIN_CAPABILITY = (8, 9)  # Ada (8.9) and Hopper (9.0) have FP8 tensor cores
RECOMPILE_LIMIT = 32  # sizes and frame counts are compiled per shape; keep a few dozen


def denoiser(pipe: Any) -> Any:
    """The network run at every step: ``transformer`` in today's video pipelines, else ``unet``."""
    return getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)


# ---------------------------------------------------------------- compile


def compile_enabled(setting: str | bool | None, device: str) -> bool:
    """``COMPILE``: ``auto`` compiles on CUDA only; ``on``/``off`` (also true/false/1/0)."""
    if isinstance(setting, bool):
        return setting
    value = (setting or "auto").strip().lower()
    if value == "auto":
        return device.startswith("cuda")
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no", "none"):
        return False
    raise ValueError(f"unknown COMPILE value {setting!r} (allowed: {', '.join(COMPILE_CHOICES)})")


def use_compile_cache(directory: str | Path) -> Path:
    """Keep Inductor's caches (FX graphs, AOTAutograd, Triton kernels) in ``directory``, so a
    restart reuses the compiled code instead of compiling again. An explicit
    ``TORCHINDUCTOR_CACHE_DIR`` in the environment wins. Call before the first compile."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current and os.path.abspath(current) != os.path.abspath(default_cache_dir()):
        path = Path(current)
    else:
        path = Path(directory).expanduser().resolve()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def compile_blocks(model: Any, **options: Any) -> int:
    """Regional compile: each repeated block's ``forward`` (``model._repeated_blocks`` names
    their class), compiled once and reused by every block; returns how many blocks. Call before
    any cache hook is registered (see the module docstring). A model without repeated blocks is
    compiled whole. ``options`` go to ``torch.compile`` (default: Inductor, full graph)."""
    import torch

    names = set(getattr(model, "_repeated_blocks", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
    if not blocks:
        model.compile(**options)
        return 0
    options = {"fullgraph": True, **options}
    for block in blocks:
        block.forward = torch.compile(block.forward, **options)
    return len(blocks)


# ---------------------------------------------------------------- FP8


def fp8_config() -> Any:
    """diffusers' ``TorchAoConfig`` for torchao's FP8 dynamic activation + weight quantisation
    (per-row scales). Raises ``ValueError`` when torchao is missing or too old."""
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow
    except ImportError as exc:
        raise ValueError(
            "QUANTIZE=fp8 needs torchao>=0.15: pip install 'ru-text2video-bot[fp8]'"
        ) from exc
    from diffusers import TorchAoConfig

    return TorchAoConfig(Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))


def check_quantize(setting: str | None, device: str) -> Any:
    """The quantisation config for ``QUANTIZE`` on ``device``, or None when off; a clear
    ``ValueError`` where it cannot run (CPU, a GPU without FP8 tensor cores, no torchao)."""
    value = (setting or "").strip().lower()
    if value in ("", "none", "off"):
        return None
    if value not in QUANTIZE_CHOICES:
        raise ValueError(f"unknown QUANTIZE value {setting!r} (allowed: none, fp8)")
    if not device.startswith("cuda"):
        raise ValueError(
            f"QUANTIZE=fp8 needs an NVIDIA GPU with FP8 tensor cores (Ada or Hopper); "
            f"this run is on {device}: unset QUANTIZE"
        )
    import torch

    capability = torch.cuda.get_device_capability(torch.device(device))
    if capability < FP8_MIN_CAPABILITY:
        name = torch.cuda.get_device_name(torch.device(device))
        raise ValueError(
            f"QUANTIZE=fp8 needs compute capability 8.9 or newer (Ada, Hopper); {name} has "
            f"{capability[0]}.{capability[1]}: unset QUANTIZE"
        )
    return fp8_config()


def quantize(model: Any, config: Any) -> None:
    """Quantise the linear layers of the repeated blocks in place with ``config``'s torchao type.

    The blocks hold almost all of the compute; embeddings, norms and the output head stay in
    their dtype (diffusers keeps the same modules out of TorchAO quantisation)."""
    import torch
    from torchao.quantization import quantize_

    names = set(getattr(model, "_repeated_blocks", None) or ())
    inside = {
        f"{name}." for name, module in model.named_modules() if type(module).__name__ in names
    }

    def in_blocks(module: torch.nn.Module, fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and (
            not inside or any(fqn.startswith(prefix) for prefix in inside)
        )

    quantize_(model, config.quant_type, filter_fn=in_blocks)


# ---------------------------------------------------------------- fast-tier weights


def _hub_file(spec: str) -> tuple[str, str] | None:
    """``owner/repo/path/in/repo.safetensors`` → (``owner/repo``, ``path/in/repo.safetensors``)."""
    parts = spec.split("/")
    if len(parts) > 2 and spec.endswith((".safetensors", ".pt", ".pth", ".bin")):
        return "/".join(parts[:2]), "/".join(parts[2:])
    return None


def fused_lora_transformer(pipe: Any, source: str, scale: float = 1.0) -> Any:
    """A copy of ``pipe``'s transformer with the LoRA ``source`` fused in; ``pipe`` is untouched.

    ``source`` is a local file or directory, a Hub repository, or ``owner/repo/file.safetensors``.
    ``load_lora_weights`` reads diffusers' key naming and converts the original Wan naming
    (``diffusion_model.blocks.0.self_attn.q.lora_A.weight``); the LoRA is fused into the copy's
    weights and its adapter layers removed, so the fast tier pays nothing per step for it and the
    other tiers never see it.
    """
    try:
        import peft  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("FAST_LORA needs the peft package: pip install peft") from exc
    fast = copy.deepcopy(pipe.transformer)
    view = type(pipe)(**{**pipe.components, "transformer": fast})  # shares everything else
    local = Path(source).expanduser()
    hub_file = None if local.exists() else _hub_file(source)
    if hub_file is not None:
        view.load_lora_weights(hub_file[0], weight_name=hub_file[1], adapter_name=LORA_ADAPTER)
    else:
        view.load_lora_weights(str(local) if local.exists() else source, adapter_name=LORA_ADAPTER)
    view.fuse_lora(components=["transformer"], lora_scale=scale, adapter_names=[LORA_ADAPTER])
    view.unload_lora_weights()  # the fused weights stay, the adapter layers go
    return fast.eval().requires_grad_(False)


def load_fast_transformer(pipe: Any, source: str, base_model: str) -> Any:
    """A step-distilled transformer of the same architecture as ``pipe``'s.

    ``source``: a diffusers model directory (or a pipeline directory with ``transformer/``), a
    Hub repository in either layout, a ``.safetensors`` file in diffusers' key naming, or a
    single file in the original naming (converted by ``from_single_file`` with the base model's
    config, ``base_model``), local or ``owner/repo/file.safetensors`` on the Hub.
    """
    base = pipe.transformer
    cls = type(base)
    dtype = base.dtype
    local = Path(source).expanduser()
    if not local.exists():
        hub_file = _hub_file(source)
        if hub_file is not None:
            from huggingface_hub import hf_hub_download

            local = Path(hf_hub_download(hub_file[0], hub_file[1]))
    if local.is_file():
        from safetensors.torch import load_file

        state = load_file(str(local))
        if set(state) == set(base.state_dict()):
            fast = copy.deepcopy(base)
            fast.load_state_dict(state)
        else:
            fast = cls.from_single_file(
                str(local), config=base_model, subfolder="transformer", torch_dtype=dtype
            )
    elif local.is_dir():
        sub = "transformer" if (local / "transformer" / "config.json").is_file() else None
        fast = cls.from_pretrained(str(local), subfolder=sub, torch_dtype=dtype)
    else:
        try:
            fast = cls.from_pretrained(source, subfolder="transformer", torch_dtype=dtype)
        except OSError:
            fast = cls.from_pretrained(source, torch_dtype=dtype)
    return fast.eval().requires_grad_(False)


def fast_scheduler(shift: float) -> Any:
    """The sampler distilled Wan models are trained for: flow-matching Euler with ``shift``."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(shift=shift)


# ---------------------------------------------------------------- per-job switching


class TierSwitch:
    """Puts ``pipe`` into the state a job's tier needs: which transformer and sampler run, and
    whether MagCache is on (for which step count). Calls diffusers only when something changes;
    the generator's lock makes the calls one job at a time.

    ``on_swap`` runs after the transformer is exchanged (model offload re-installs its hooks).
    """

    def __init__(
        self,
        pipe: Any,
        support: TierSupport,
        fast_transformer: Any = None,
        fast_sampler: Any = None,
        on_swap: Any = None,
    ) -> None:
        self.pipe = pipe
        self.support = support
        self.base = pipe.transformer
        self.base_sampler = pipe.scheduler
        self.fast = fast_transformer
        self.fast_sampler = fast_sampler
        self.on_swap = on_swap
        self.cache_steps: int | None = None  # the step count MagCache is enabled for; None = off
        if getattr(self.base, "is_cache_enabled", False):
            self.base.disable_cache()  # the switch owns the cache state from here on

    def applied(self, quality: str) -> list[str]:
        """What a job of ``quality`` runs with (for logs and benchmarks)."""
        done = []
        if self.support.uses_distilled(quality) and self.fast is not None:
            done.append("transformer=fast (distilled), sampler=flow-match Euler")
        if self.support.uses_cache(quality):
            done.append("cache=MagCache")
        return done

    def prepare(self, quality: str, steps: int) -> None:
        distilled = self.support.uses_distilled(quality) and self.fast is not None
        transformer = self.fast if distilled else self.base
        sampler = self.fast_sampler if distilled else self.base_sampler
        if self.pipe.scheduler is not sampler:
            self.pipe.scheduler = sampler
        if self.pipe.transformer is not transformer:
            self.pipe.transformer = transformer
            if self.on_swap is not None:
                self.on_swap()
        if distilled:
            return  # the base transformer's cache state does not matter while it rests
        if self.support.uses_cache(quality):
            if self.cache_steps != steps:  # MagCache's ratios are laid out for a step count
                assert self.support.cache is not None
                if self.base.is_cache_enabled:
                    self.base.disable_cache()
                self.base.enable_cache(self.support.cache.config(steps))
                self.cache_steps = steps
        elif self.cache_steps is not None:
            self.base.disable_cache()
            self.cache_steps = None
