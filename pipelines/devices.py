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
