"""Load a TripoSG folder in its published layout, strictly: every published tensor used, every parameter filled.

The folder holds ``model_index.json`` and one sub-folder per component: ``transformer/`` and ``vae/``
(diffusers ``config.json`` + ``diffusion_pytorch_model.safetensors``), ``image_encoder_dinov2/``
(transformers ``Dinov2Model``), ``feature_extractor_dinov2/`` (``BitImageProcessor``), ``scheduler/``
(read by diffusers' ``FlowMatchEulerDiscreteScheduler``) and, for the scribble variant, ``tokenizer/`` +
``text_encoder/`` (CLIP). Only safetensors are read; nothing is downloaded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...errors import InvalidInput

IMAGE_COMPONENTS = ("transformer", "vae", "scheduler", "image_encoder_dinov2", "feature_extractor_dinov2")
TEXT_COMPONENTS = ("tokenizer", "text_encoder")


class CheckpointMismatch(InvalidInput):
    """A component's weights do not match the architecture its config describes."""


@dataclass
class TripoSGComponents:
    transformer: object
    vae: object
    scheduler: object
    image_encoder: object
    image_processor: object
    tokenizer: object = None
    text_encoder: object = None

    @property
    def takes_text(self) -> bool:
        return self.text_encoder is not None


def _weight_keys(folder: Path, stem: str) -> set[str]:
    """Tensor names in ``stem.safetensors`` or in the shards its ``.safetensors.index.json`` lists."""
    from safetensors import safe_open

    single = folder / f"{stem}.safetensors"
    index = folder / f"{stem}.safetensors.index.json"
    if single.exists():
        files = [single]
    elif index.exists():
        files = sorted({folder / name for name in json.loads(index.read_text())["weight_map"].values()})
    else:
        raise CheckpointMismatch(f"{folder} has no {stem}.safetensors (only safetensors weights are read)")
    keys: set[str] = set()
    for path in files:
        with safe_open(str(path), "pt") as handle:
            keys.update(handle.keys())
    return keys


def check_keys(component: str, published: set[str], expected: set[str]) -> None:
    """Raise ``CheckpointMismatch`` naming the first missing and unused tensors, if any."""
    missing, unused = sorted(expected - published), sorted(published - expected)
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"{len(missing)} parameter(s) have no weights, e.g. {', '.join(missing[:3])}")
        if unused:
            parts.append(f"{len(unused)} published tensor(s) match no parameter, e.g. {', '.join(unused[:3])}")
        raise CheckpointMismatch(f"the {component} checkpoint does not match its architecture: " + "; ".join(parts))


def load_diffusers_model(cls, folder: Path, component: str):
    """``cls.from_pretrained`` after checking the weight names against a weightless (meta) build of the config."""
    import torch

    config = cls.load_config(str(folder))
    with torch.device("meta"):
        skeleton = cls.from_config(config)
    check_keys(component, _weight_keys(folder, "diffusion_pytorch_model"), set(skeleton.state_dict()))
    return cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True).eval()


def load_transformers_model(cls, folder: Path, component: str):
    """A transformers model, refused unless its loading report lists no missing or unused weights."""
    model, info = cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                      output_loading_info=True)
    missing = set(info.get("missing_keys") or ())
    unused = set(info.get("unexpected_keys") or ())
    mismatched = info.get("mismatched_keys") or ()
    if missing or unused:
        check_keys(component, unused, missing)  # same message shape: missing first, then unused
    if mismatched:
        raise CheckpointMismatch(f"the {component} checkpoint has tensors of the wrong shape, e.g. {list(mismatched)[:2]}")
    return model.eval()


def load_components(path: str | Path) -> TripoSGComponents:
    """Every component of a TripoSG (or TripoSG-scribble) folder; raises ``CheckpointMismatch`` on any gap."""
    from transformers import AutoImageProcessor, Dinov2Model

    from ...devices import quiet_libraries
    from .models import TripoSGDiTModel, TripoSGVAEModel

    quiet_libraries()
    from diffusers import FlowMatchEulerDiscreteScheduler

    root = Path(path)
    index_path = root / "model_index.json"
    if not index_path.exists():
        raise CheckpointMismatch(f"{root} has no model_index.json; expected a TripoSG folder")
    index = json.loads(index_path.read_text())
    takes_text = "text_encoder" in index
    wanted = IMAGE_COMPONENTS + (TEXT_COMPONENTS if takes_text else ())
    absent = [name for name in wanted if not (root / name).is_dir()]
    if absent:
        raise CheckpointMismatch(f"{root} lacks the component folder(s) {', '.join(absent)}")
    components = TripoSGComponents(
        transformer=load_diffusers_model(TripoSGDiTModel, root / "transformer", "transformer"),
        vae=load_diffusers_model(TripoSGVAEModel, root / "vae", "vae"),
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(str(root / "scheduler"), local_files_only=True),
        image_encoder=load_transformers_model(Dinov2Model, root / "image_encoder_dinov2", "image_encoder_dinov2"),
        image_processor=AutoImageProcessor.from_pretrained(str(root / "feature_extractor_dinov2"), local_files_only=True),
    )
    if takes_text:
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer

        components.tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
        components.text_encoder = load_transformers_model(CLIPTextModelWithProjection, root / "text_encoder",
                                                          "text_encoder")
    # The two conditions must fit the transformer the folder ships.
    cfg = components.transformer.config
    dino = components.image_encoder.config.hidden_size
    image_dim = cfg.cross_attention_2_dim if takes_text else cfg.cross_attention_dim
    if image_dim != dino:
        raise CheckpointMismatch(f"transformer expects image tokens of width {image_dim}, the DINOv2 encoder gives {dino}")
    if takes_text and (not cfg.use_cross_attention_2 or cfg.cross_attention_dim != components.text_encoder.config.hidden_size):
        raise CheckpointMismatch("the scribble transformer must cross-attend to the CLIP text tokens and the image tokens")
    if cfg.in_channels != components.vae.config.latent_channels:
        raise CheckpointMismatch(f"transformer works on {cfg.in_channels} latent channels, the VAE decodes "
                                 f"{components.vae.config.latent_channels}")
    return components
