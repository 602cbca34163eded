"""Device and dtype choice for the pipelines (cuda, then mps, then cpu)."""
from __future__ import annotations

from .errors import InvalidInput

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")


def resolve_device(device: str = "auto") -> str:
    """Return the concrete torch device name for ``device`` (``auto`` picks cuda, then mps, then cpu)."""
    import torch

    if device not in DEVICES:
        raise InvalidInput(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("device 'cuda' was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    return device


def resolve_dtype(dtype: str, device: str):
    """Return the torch dtype: half precision on GPUs by default, float32 on the CPU."""
    import torch

    if dtype not in DTYPES:
        raise InvalidInput(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device == "mps":
            return torch.float16
        return torch.float32
    return getattr(torch, dtype)


def make_generator(device: str, seed: int):
    """A seeded ``torch.Generator``; CPU generators on mps, as diffusers recommends."""
    import torch

    return torch.Generator("cpu" if device == "mps" else device).manual_seed(int(seed))


def quiet_libraries() -> None:
    """Silence download/loading progress bars and advisory warnings of diffusers and transformers."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*torch_dtype.*is deprecated.*", category=FutureWarning)
    # a second LoRA on the same model is intended (several adapters at once)
    warnings.filterwarnings("ignore", message=".*Already found a `peft_config` attribute.*")


# --------------------------------------------------------------------------- memory modes
OFFLOAD_MODES = ("none", "model", "sequential")
ATTENTION_MODES = ("sdpa", "default")


class MemoryOptions:
    """How a pipeline trades speed for GPU memory; every knob off by default except SDPA attention."""

    def __init__(self, *, attention: str = "sdpa", vae_slicing: bool = False, vae_tiling: bool = False,
                 offload: str = "none"):
        if attention not in ATTENTION_MODES:
            raise InvalidInput(f"attention {attention!r} is not one of {', '.join(ATTENTION_MODES)}")
        if offload not in OFFLOAD_MODES:
            raise InvalidInput(f"offload {offload!r} is not one of {', '.join(OFFLOAD_MODES)}")
        self.attention, self.vae_slicing, self.vae_tiling, self.offload = attention, vae_slicing, vae_tiling, offload

    def __repr__(self) -> str:
        return (f"MemoryOptions(attention={self.attention!r}, vae_slicing={self.vae_slicing}, "
                f"vae_tiling={self.vae_tiling}, offload={self.offload!r})")


def _vae(pipe):
    return getattr(pipe, "vae", None)


def enable_vae_saving(pipe, *, slicing: bool = True, tiling: bool = True) -> list[str]:
    """Decode one image at a time (slicing) and in overlapping tiles (tiling); returns what was turned on."""
    vae, done = _vae(pipe), []
    if vae is None:
        return done
    if slicing and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
        done.append("VAE slicing")
    if tiling and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
        done.append("VAE tiling")
    return done


def enable_offload(pipe, mode: str, device: str) -> str | None:
    """Model (whole sub-models) or sequential (layer by layer) CPU offload; only meaningful on an accelerator."""
    if mode == "none" or device not in ("cuda", "mps", "xpu"):
        return None
    if mode == "model":
        pipe.enable_model_cpu_offload(device=device)
        return "model CPU offload"
    pipe.enable_sequential_cpu_offload(device=device)
    return "sequential CPU offload"


def apply_memory_options(pipe, options: MemoryOptions, device: str) -> list[str]:
    """Apply ``options`` to a loaded pipeline; returns a short description of each mode now on."""
    on: list[str] = []
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    for name in ("unet", "controlnet"):
        model = getattr(pipe, name, None)
        if model is not None and hasattr(model, "set_attn_processor"):
            # SDPA is PyTorch's fused attention (flash / memory-efficient kernels on CUDA)
            model.set_attn_processor(AttnProcessor2_0() if options.attention == "sdpa" else AttnProcessor())
    on.append("SDPA attention" if options.attention == "sdpa" else "classic attention")
    on += enable_vae_saving(pipe, slicing=options.vae_slicing, tiling=options.vae_tiling)
    offload = enable_offload(pipe, options.offload, device)
    if offload:
        on.append(offload)
    return on


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OOM error on any device (and the RuntimeError older builds raise)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_memory(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def run_with_memory_fallback(run_batch, items: list, *, pipe, device: str, notes: list[str] | None = None) -> list:
    """Call ``run_batch(chunk)`` over ``items``; on out-of-memory retry with smaller chunks, then VAE
    slicing + tiling, then model CPU offload (on an accelerator), appending what was done to ``notes``.

    ``run_batch`` must return one result per item of the chunk so that splitting never changes what
    each item produces (one seeded generator per image keeps images identical).
    """
    from .errors import OutOfMemory

    notes = [] if notes is None else notes
    batch, i, out = max(1, len(items)), 0, []
    tried_vae = tried_offload = False
    while i < len(items):
        chunk = items[i : i + batch]
        try:
            out += list(run_batch(chunk))
            i += len(chunk)
            continue
        except Exception as exc:  # only out-of-memory is handled; anything else propagates as is
            if not is_out_of_memory(exc):
                raise
        free_memory(device)
        if batch > 1:
            batch = max(1, batch // 2)
            notes.append(f"out of memory with {len(chunk)} images at once; retried {batch} at a time")
        elif not tried_vae and _vae(pipe) is not None:
            tried_vae = True
            done = enable_vae_saving(pipe)
            notes.append(f"out of memory with one image; turned on {' and '.join(done)} and retried")
        elif not tried_offload and device in ("cuda", "mps", "xpu"):
            tried_offload = True
            enable_offload(pipe, "model", device)
            notes.append("out of memory with one image; moved idle sub-models to the CPU (model offload) and retried")
        else:
            raise OutOfMemory(
                f"the {device} ran out of memory even with one image at a time"
                + (", VAE slicing/tiling" if tried_vae else "")
                + (" and CPU offload" if tried_offload else "")
                + "; try a smaller size, fewer steps or the draft preset"
            ) from None
    return out
