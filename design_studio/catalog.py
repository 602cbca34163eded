"""The model catalogue: which checkpoint plays which role, under which licence, in which profile.

Profiles: ``tiny`` (random-weight twins built here from configs, no download, CPU in seconds),
``standard`` (commercially usable checkpoints for a 12-24 GB GPU) and ``quality`` (a large GPU).
Restricted licences are never a profile default.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRequest, ModelMissing

ROLES = ("concept", "sketch", "depth", "mesh", "segmentation", "lrm", "shap-e", "shap-e-text", "hunyuan3d", "multiview")


@dataclass(frozen=True)
class ModelEntry:
    """One catalogue model. ``revision`` 'main' is resolved to a commit and pinned by the lock file."""

    key: str
    role: str
    repo_id: str
    revision: str
    licence: str
    commercial: bool
    excluded_territories: tuple[str, ...] = ()
    vram_gb: float = 0.0
    notes: str = ""
    tiny: bool = False
    restricted: bool = False
    #: what ``studio models pull`` fetches: configs, tokenizers and safetensors weights, never pickles
    allow_patterns: tuple[str, ...] = ("*.json", "*.txt", "*.safetensors")

    @property
    def licence_line(self) -> str:
        use = "commercial use allowed" if self.commercial else "NOT for commercial use"
        where = f"; excluded: {', '.join(self.excluded_territories)}" if self.excluded_territories else ""
        return f"{self.licence} ({use}{where})"


CATALOGUE: dict[str, ModelEntry] = {
    e.key: e
    for e in [
        ModelEntry(
            key="tiny-concept",
            role="concept",
            repo_id="design-studio/tiny-stable-diffusion",
            revision="local",
            licence="random weights made here (no licence needed)",
            commercial=True,
            notes="64x64 random-weight twin of Stable Diffusion; shows the flow, not a picture",
            tiny=True,
        ),
        ModelEntry(
            key="tiny-depth",
            role="depth",
            repo_id="design-studio/tiny-depth-anything",
            revision="local",
            licence="random weights made here (no licence needed)",
            commercial=True,
            notes="random-weight twin of Depth Anything on a tiny DINOv2 backbone",
            tiny=True,
        ),
        ModelEntry(
            key="tiny-sketch",
            role="sketch",
            repo_id="design-studio/tiny-controlnet-scribble",
            revision="local",
            licence="random weights made here (no licence needed)",
            commercial=True,
            notes="random-weight twin of a scribble ControlNet for the tiny model",
            tiny=True,
        ),
        ModelEntry(
            key="sdxl-base",
            role="concept",
            repo_id="stabilityai/stable-diffusion-xl-base-1.0",
            revision="main",
            licence="CreativeML Open RAIL++-M",
            commercial=True,
            vram_gb=10,
            notes="1024x1024 product shots; use-based restrictions of the licence apply",
            # the diffusers folders only: not the 7 GB single-file checkpoint, fp16 variants or ONNX/Flax
            allow_patterns=("model_index.json", "*/config.json", "*/*.txt", "tokenizer*/*.json",
                            "scheduler/*.json", "*/diffusion_pytorch_model.safetensors", "text_encoder*/model.safetensors"),
        ),
        ModelEntry(
            key="controlnet-scribble-sdxl",
            role="sketch",
            repo_id="xinsir/controlnet-scribble-sdxl-1.0",
            revision="main",
            licence="Apache-2.0",
            commercial=True,
            vram_gb=3,
            notes="sketch/scribble conditioning for SDXL (white lines on black)",
            allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
        ),
        ModelEntry(
            key="depth-anything-v2-small",
            role="depth",
            repo_id="depth-anything/Depth-Anything-V2-Small-hf",
            revision="main",
            licence="Apache-2.0",
            commercial=True,
            vram_gb=1,
            notes="only the Small variant is Apache-2.0 (Base/Large are CC-BY-NC-4.0)",
        ),
        ModelEntry(
            key="flux-schnell",
            role="concept",
            repo_id="black-forest-labs/FLUX.1-schnell",
            revision="main",
            licence="Apache-2.0",
            commercial=True,
            vram_gb=24,
            notes=("4-step distilled; for 24 GB+ GPUs (FLUX.1-dev is non-commercial and not listed). "
                   "No sketch ControlNet for FLUX is commercially usable today (the canny/union ones are "
                   "FLUX.1-dev derivatives under its non-commercial licence): sketches use img2img"),
            allow_patterns=("model_index.json", "*/config.json", "*/*.txt", "tokenizer*/*.json", "tokenizer*/*.model",
                            "scheduler/*.json", "*/*.safetensors", "*/*.safetensors.index.json"),
        ),
        # ---- 3D (issue 5): backends, background removal
        ModelEntry(
            key="tiny-segformer", role="segmentation", repo_id="design-studio/tiny-segformer", revision="local",
            licence="random weights made here (no licence needed)", commercial=True, tiny=True,
            notes="random-weight two-label SegFormer; the threshold cut-out handles plain backgrounds",
        ),
        ModelEntry(
            key="tiny-lrm", role="lrm", repo_id="design-studio/tiny-lrm", revision="local",
            licence="random weights made here (no licence needed)", commercial=True, tiny=True,
            notes="TripoSR-class network, tiny, random weights with a planted round prior",
        ),
        ModelEntry(
            key="tiny-shap-e-img2img", role="shap-e", repo_id="design-studio/tiny-shap-e-img2img", revision="local",
            licence="random weights made here (no licence needed)", commercial=True, tiny=True,
            notes="random-weight ShapEImg2ImgPipeline",
        ),
        ModelEntry(
            key="tiny-shap-e", role="shap-e-text", repo_id="design-studio/tiny-shap-e", revision="local",
            licence="random weights made here (no licence needed)", commercial=True, tiny=True,
            notes="random-weight ShapEPipeline (text -> 3D)",
        ),
        ModelEntry(
            key="segformer-b2-clothes", role="segmentation", repo_id="mattmdjaga/segformer_b2_clothes",
            revision="main", licence="MIT", commercial=True, vram_gb=0.5,
            notes="label 0 is background; used only when the image has no alpha and no plain backdrop",
        ),
        ModelEntry(
            key="triposr", role="lrm", repo_id="stabilityai/TripoSR", revision="main", licence="MIT",
            commercial=True, vram_gb=6, notes="config.yaml + model.ckpt, loaded with weights_only and a key map",
        ),
        ModelEntry(
            key="shap-e-img2img", role="shap-e", repo_id="openai/shap-e-img2img", revision="main", licence="MIT",
            commercial=True, vram_gb=4, notes="image -> 3D; low fidelity, closed blobby shapes",
        ),
        ModelEntry(
            key="shap-e", role="shap-e-text", repo_id="openai/shap-e", revision="main", licence="MIT",
            commercial=True, vram_gb=4, notes="text -> 3D; low fidelity",
        ),
        # ---- textures all round: multi-view painting on the SDXL base
        ModelEntry(
            key="tiny-mv-adapter", role="multiview", repo_id="design-studio/tiny-mv-adapter", revision="local",
            licence="random weights made here (no licence needed)", commercial=True, tiny=True,
            notes="MV-Adapter twin shaped for the tiny (SD-1.5-shaped) concept UNet; random weights",
        ),
        ModelEntry(
            key="mv-adapter", role="multiview", repo_id="huanngzh/mv-adapter", revision="main", licence="Apache-2.0",
            commercial=True, vram_gb=14,
            notes=("image + geometry -> 6 views (mvadapter_ig2mv_sdxl); runs on stabilityai/stable-diffusion-xl-base-1.0, "
                   "so its outputs also carry the CreativeML Open RAIL++-M use restrictions; geometry maps come from "
                   "the studio's own rasteriser (the upstream texture pipeline's nvdiffrast is not used)"),
            allow_patterns=("mvadapter_ig2mv_sdxl.safetensors",),
        ),
        ModelEntry(
            key="hunyuan3d-2", role="hunyuan3d", repo_id="tencent/Hunyuan3D-2", revision="main",
            licence="Tencent Hunyuan 3D 2.0 Community License", commercial=False,
            excluded_territories=("EU", "UK", "South Korea"), vram_gb=12, restricted=True,
            notes="opt-in only: not licensed in the EU, UK or South Korea; needs the hy3dgen package (not installed)",
        ),
    ]
}

#: 3D roles each profile adds (kept apart from PROFILES' concept roles so areas merge cleanly).
MESH_PROFILE_ROLES: dict[str, dict[str, str]] = {
    "tiny": {"segmentation": "tiny-segformer", "lrm": "tiny-lrm", "shap-e": "tiny-shap-e-img2img",
             "shap-e-text": "tiny-shap-e", "multiview": "tiny-mv-adapter"},
    "standard": {"segmentation": "segformer-b2-clothes", "lrm": "triposr", "shap-e": "shap-e-img2img",
                 "shap-e-text": "shap-e", "multiview": "mv-adapter"},
    "quality": {"segmentation": "segformer-b2-clothes", "lrm": "triposr", "shap-e": "shap-e-img2img",
                "shap-e-text": "shap-e", "multiview": "mv-adapter"},
}

#: The base model MV-Adapter runs on per profile (SDXL even where the concept model is FLUX).
MULTIVIEW_BASE: dict[str, str] = {"tiny": "tiny-concept", "standard": "sdxl-base", "quality": "sdxl-base"}

#: How a mesh is textured: projecting the concept image (fast), or painting six generated views.
TEXTURE_MODES = ("project", "multiview")


@dataclass(frozen=True)
class MeshBackendInfo:
    """A 3D backend as the UI and CLI list it."""

    name: str
    role: str  # catalogue role of its model
    inputs: str  # image | image or text
    good_for: str
    text_role: str = ""


MESH_BACKENDS: dict[str, MeshBackendInfo] = {
    b.name: b
    for b in [
        MeshBackendInfo("depth-relief", "depth", "image",
                        "flat and thin parts: straps, handles, leather panels (front view only)"),
        MeshBackendInfo("lrm", "lrm", "image", "whole closed objects from one picture (TripoSR class)"),
        MeshBackendInfo("shap-e", "shap-e", "image or text", "rough closed volumes; text -> 3D",
                        text_role="shap-e-text"),
        MeshBackendInfo("hunyuan3d-2", "hunyuan3d", "image",
                        "high-detail shapes; RESTRICTED licence, opt-in, not installed"),
    ]
}

#: 3D defaults per profile (face budget, texture size, field grid, turntable frames, preview size).
MESH_DEFAULTS: dict[str, dict] = {
    "tiny": {"backend": "depth-relief", "face_budget": 5000, "texture_size": 256, "grid": 32,
             "turntable_frames": 8, "preview_size": 160, "shap_e_steps": 2,
             "texture": "project", "multiview_size": 32, "multiview_steps": 2},
    "standard": {"backend": "lrm", "face_budget": 40000, "texture_size": 1024, "grid": 256,
                 "turntable_frames": 36, "preview_size": 384, "shap_e_steps": 64,
                 "texture": "project", "multiview_size": 768, "multiview_steps": 50},
    "quality": {"backend": "lrm", "face_budget": 100000, "texture_size": 2048, "grid": 320,
                "turntable_frames": 48, "preview_size": 512, "shap_e_steps": 64,
                "texture": "project", "multiview_size": 768, "multiview_steps": 50},
}

PROFILES: dict[str, dict[str, str]] = {
    "tiny": {"concept": "tiny-concept", "sketch": "tiny-sketch", "depth": "tiny-depth"},
    "standard": {"concept": "sdxl-base", "sketch": "controlnet-scribble-sdxl", "depth": "depth-anything-v2-small"},
    # no "sketch" on purpose: see the flux-schnell notes (sketch -> image falls back to img2img)
    "quality": {"concept": "flux-schnell", "depth": "depth-anything-v2-small"},
}

#: Scheduler short names offered per profile before the model is loaded (its own default first).
SCHEDULER_CHOICES: dict[str, tuple[str, ...]] = {
    "tiny": ("ddim", "euler", "euler_a", "dpmpp_2m", "unipc", "pndm", "heun"),
    "standard": ("euler", "euler_a", "dpmpp_2m", "unipc", "ddim", "heun", "pndm"),
    "quality": ("flow_euler",),
}

#: "draft" (few steps, to explore) and "final" (full quality) per profile.
SPEED_PRESETS: dict[str, dict[str, dict]] = {
    "tiny": {"draft": {"steps": 2}, "final": {"steps": 4}},
    "standard": {"draft": {"steps": 12}, "final": {"steps": 30}},
    "quality": {"draft": {"steps": 2}, "final": {"steps": 4}},
}

#: Sensible generation defaults per profile (steps, guidance, size).
PROFILE_DEFAULTS: dict[str, dict] = {
    "tiny": {"steps": 2, "guidance": 5.0, "width": 64, "height": 64, "mesh_resolution": 48},
    "standard": {"steps": 30, "guidance": 6.0, "width": 1024, "height": 1024, "mesh_resolution": 192},
    "quality": {"steps": 4, "guidance": 0.0, "width": 1024, "height": 1024, "mesh_resolution": 256},
}


#: Restricted models a designer may opt into by name; never in a profile.
CATALOGUE_ROLES_OPT_IN: dict[str, str] = {"hunyuan3d": "hunyuan3d-2"}


@dataclass
class ModelStatus:
    entry: ModelEntry
    path: Path | None
    how_to_get: str = field(default="")

    @property
    def available(self) -> bool:
        return self.path is not None


def entry_for(profile: str, role: str) -> ModelEntry:
    """The catalogue entry a profile uses for a role."""
    if profile not in PROFILES:
        raise InvalidRequest(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    key = PROFILES[profile].get(role) or MESH_PROFILE_ROLES.get(profile, {}).get(role)
    if key is None and role in CATALOGUE_ROLES_OPT_IN:
        key = CATALOGUE_ROLES_OPT_IN[role]
    if key is None:
        raise InvalidRequest(f"profile {profile!r} has no model for the role {role!r}")
    return CATALOGUE[key]


def local_path(entry: ModelEntry, models_dir: Path) -> Path | None:
    """Where the entry's weights are on this machine, or None. Never downloads anything."""
    if entry.tiny:
        from pipelines.testing import materialize_tiny_models

        if entry.role == "multiview":
            from pipelines.twins.mv_adapter import materialize_tiny_mv_adapter

            return materialize_tiny_mv_adapter(Path(models_dir) / "tiny")

        if entry.role in MESH_PROFILE_ROLES["tiny"]:
            from pipelines.testing import materialize_tiny_mesh_models

            return materialize_tiny_mesh_models(Path(models_dir) / "tiny")[entry.role]
        return materialize_tiny_models(Path(models_dir) / "tiny")[entry.role]
    candidate = Path(models_dir) / entry.repo_id
    if any((candidate / name).exists() for name in ("model_index.json", "config.json", "config.yaml")):
        return candidate
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(entry.repo_id, revision=entry.revision, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError and friends: not on this machine
        return None


def optional(profile: str, role: str, models_dir: Path) -> tuple[ModelEntry, Path] | None:
    """Entry and path for a role the profile may lack (e.g. no sketch model): None when absent."""
    if PROFILES.get(profile, {}).get(role) is None:
        return None
    entry = entry_for(profile, role)
    path = local_path(entry, models_dir)
    return (entry, path) if path is not None else None


def status(profile: str, models_dir: Path, *, build_tiny: bool = True) -> list[ModelStatus]:
    """Availability of every model a profile needs, with instructions for the missing ones."""
    if profile not in PROFILES:
        raise InvalidRequest(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    out = []
    for role in PROFILES[profile]:
        entry = entry_for(profile, role)
        if entry.tiny and not build_tiny:
            out.append(ModelStatus(entry, Path(models_dir) / "tiny"))
            continue
        path = local_path(entry, models_dir)
        how = "" if path else (
            f"put a diffusers/transformers folder of {entry.repo_id} at {Path(models_dir) / entry.repo_id} "
            f"(e.g. `huggingface-cli download {entry.repo_id} --local-dir {Path(models_dir) / entry.repo_id}` "
            "on a machine with internet access, then copy it here)"
        )
        out.append(ModelStatus(entry, path, how))
    return out


def multiview_base(profile: str, models_dir: Path) -> tuple[ModelEntry, Path]:
    """The SDXL-class base MV-Adapter runs on in this profile, or ``ModelMissing`` saying how to get it."""
    entry = CATALOGUE[MULTIVIEW_BASE[profile]]
    path = local_path(entry, models_dir)
    if path is None:
        raise ModelMissing(f"multi-view texturing runs on {entry.repo_id} ({entry.licence_line}), which is not on "
                           f"this machine; put its folder at {Path(models_dir) / entry.repo_id}")
    return entry, path


def require(profile: str, role: str, models_dir: Path) -> tuple[ModelEntry, Path]:
    """The entry and local path for a role, or ``ModelMissing`` saying how to get it."""
    entry = entry_for(profile, role)
    path = local_path(entry, models_dir)
    if path is None:
        raise ModelMissing(
            f"the {role} model {entry.repo_id} ({entry.licence_line}) is not on this machine; "
            f"put its folder at {Path(models_dir) / entry.repo_id}, or start with --profile tiny"
        )
    return entry, path
