"""Random-weight twin of MV-Adapter (huanngzh/mv-adapter) in its published layout: one safetensors file,
``mvadapter_ig2mv_sdxl.safetensors``, holding the UNet's multi-view / reference attention branches and
the T2I condition encoder, shaped for a given base UNet (the SDXL twin beside it in a mirror, or the
tiny profile's UNet)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InvalidInput

REPO_ID = "huanngzh/mv-adapter"
BASE_REPO_ID = "stabilityai/stable-diffusion-xl-base-1.0"


def build_mv_adapter(directory: Path, seed: int = 0, *, base: Path | None = None) -> Path:
    """Write the twin into ``directory`` for the UNet of the diffusers folder ``base`` (default: the SDXL
    base twin at ``<mirror>/stabilityai/stable-diffusion-xl-base-1.0`` beside ``<mirror>/huanngzh/mv-adapter``).

    The branches start as copies of the base attention projections (the adapter's own initialisation)
    plus seeded noise, so a test can tell loaded weights from the copies.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from ..texture.mv_adapter import WEIGHT_NAME, adapter_keys, condition_encoder, install_processors

    directory = Path(directory)
    base = Path(base) if base is not None else directory.parents[1] / BASE_REPO_ID
    if not (base / "unet" / "config.json").is_file():
        raise InvalidInput(f"MV-Adapter twin needs its base model's unet/config.json; none at {base}")
    unet = UNet2DConditionModel.from_config(json.loads((base / "unet" / "config.json").read_text()))
    vae = json.loads((base / "vae" / "config.json").read_text())
    vae_scale = 2 ** (len(vae["block_out_channels"]) - 1)
    install_processors(unet, copy_weights=True)
    torch.manual_seed(seed)
    encoder = condition_encoder(unet, vae_scale)
    state = unet.state_dict()
    gen = torch.Generator().manual_seed(seed)
    tensors = {k: (state[k] + 0.01 * torch.randn(state[k].shape, generator=gen)).contiguous() for k in adapter_keys(unet)}
    tensors.update({k: v.contiguous() for k, v in encoder.state_dict().items()})  # already "adapter.*"
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / WEIGHT_NAME), metadata={"format": "pt"})
    return directory / WEIGHT_NAME


def materialize_tiny_mv_adapter(root: Path, seed: int = 0) -> Path:
    """The tiny profile's MV-Adapter twin under ``root`` (built once), shaped for the tiny concept UNet."""
    from ..testing import TINY_VERSION, materialize_tiny_models
    from ..texture.mv_adapter import WEIGHT_NAME

    root = Path(root)
    folder = root / "tiny-mv-adapter"
    stamp = json.dumps({"version": TINY_VERSION, "seed": seed, "adapter": 1})
    marker = folder / ".tiny-ready"
    if not (marker.exists() and marker.read_text() == stamp and (folder / WEIGHT_NAME).exists()):
        base = materialize_tiny_models(root, seed)["concept"]
        build_mv_adapter(folder, seed, base=base)
        marker.write_text(stamp)
    return folder


def materialize_tiny_multiview(root: Path, seed: int = 0) -> dict[str, Path]:
    """``{"multiview": folder}``: the tiny MV-Adapter twin, as the registry's twin builders answer."""
    return {"multiview": materialize_tiny_mv_adapter(root, seed)}
