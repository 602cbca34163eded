"""Published pickle checkpoints -> safetensors, read with ``torch.load(weights_only=True)``.

``weights_only`` unpickles tensors and plain containers only, never arbitrary objects, so a checkpoint
that holds code is refused rather than run. The result is a plain ``model.safetensors`` with the
checkpoint's own key names; the model's loader maps the names as it does for the pickle.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .errors import InvalidInput

#: TripoSR's published layout: the network config and its weights as a pickled state dict.
TRIPOSR_CONFIG, TRIPOSR_CHECKPOINT = "config.yaml", "model.ckpt"


def convert_triposr_checkpoint(src_dir: str | Path, dst_dir: str | Path) -> Path:
    """Write ``dst_dir/model.safetensors`` (and a copy of ``config.yaml``) from TripoSR's ``model.ckpt``.

    Returns the safetensors path. Raises ``InvalidInput`` when the checkpoint is missing, is not a flat
    mapping of names to tensors, or holds anything ``weights_only`` refuses.
    """
    import pickle

    import torch
    from safetensors.torch import save_file

    src, dst = Path(src_dir), Path(dst_dir)
    ckpt = src / TRIPOSR_CHECKPOINT
    if not ckpt.is_file():
        raise InvalidInput(f"{src} has no {TRIPOSR_CHECKPOINT} to convert")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{ckpt} is not a weights-only checkpoint ({first})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint wraps the weights
    if not isinstance(state, dict) or not state:
        raise InvalidInput(f"{ckpt} holds a {type(state).__name__}, expected a mapping of names to tensors")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise InvalidInput(f"{ckpt}: {len(bad)} entries are not named tensors, e.g. {bad[0]!r}")
    dst.mkdir(parents=True, exist_ok=True)
    out = dst / "model.safetensors"
    tmp = out.with_name(out.name + ".part")
    # clone: tensors that share storage (tied weights) cannot be saved side by side
    save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(tmp),
              metadata={"format": "pt", "converted_from": TRIPOSR_CHECKPOINT})
    tmp.replace(out)
    if (src / TRIPOSR_CONFIG).is_file() and src.resolve() != dst.resolve():
        shutil.copyfile(src / TRIPOSR_CONFIG, dst / TRIPOSR_CONFIG)
    return out
