"""The model registry: which checkpoint plays which role, how it loads, under which licence and lineage.

Profiles: ``tiny`` (random-weight twins built here from configs, no download, CPU in seconds),
``standard`` (commercially usable checkpoints for a 12-24 GB GPU) and ``quality`` (a large GPU).

Everything that lists models or 3D backends reads this one registry: ``studio models list|status|pull|
verify``, ``studio mesh --list-backends`` and its ``--backend`` help, the UI's backend choices, the batch
job file's ``mesh`` column and the batch item key. Adding a concept model is one :class:`ModelEntry`
(``profiles`` says which profiles use it for its role); adding a 3D backend is one :class:`MeshBackend`
carrying its models. :func:`register` checks an entry before it is listed: a model whose base licence is
non-commercial cannot be marked commercial, and only commercially usable models are profile defaults.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRequest, ModelMissing

PROFILE_NAMES = ("tiny", "standard", "quality")
#: A model built here from a config: no licence, nothing to pull.
MADE_HERE = "random weights made here (no licence needed)"


@dataclass(frozen=True)
class Upstream:
    """A model, component or data set an entry derives from, with its own terms.

    ``how``: ``base`` (fine-tuned or initialised from it: its licence is inherited), ``part`` (a component
    shipped inside the entry's weights) or ``data`` (training data whose terms differ from the card).
    """

    name: str
    licence: str
    how: str = "base"
    commercial: bool = True
    what: str = ""  # the role it plays, e.g. "image tokenizer"

    @property
    def line(self) -> str:
        what = f" {self.what}" if self.what else ""
        return f"{self.how}: {self.name}{what} ({self.licence}{'' if self.commercial else ', NOT for commercial use'})"


@dataclass(frozen=True)
class ModelEntry:
    """One registered model. ``revision`` 'main' is resolved to a commit and pinned by the lock file.

    ``loader`` is a dotted path ``"module:Class.method"`` called as ``loader(path, name/model_name=,
    revision=, device=[, dtype=], **load_kwargs)`` by :func:`load_entry`; empty for a model that another
    role's model attaches (the sketch ControlNet joins the concept pipeline). An entry that ``runs_on``
    another registered model (an adapter on its base) also gets ``base_path=``, ``base_name=`` and
    ``base_revision=``; :func:`profile_models` lists that base so ``pull`` and ``status`` cover it.
    ``twin`` is a dotted path ``builder(root) -> {role: folder}`` for the tiny models made here. ``convert`` names published pickle
    files that ``studio models pull`` may fetch only to turn them into safetensors with ``converter``
    (``converter(src_dir, dst_dir)``); the pickle never reaches the models folder.
    """

    key: str
    role: str
    repo_id: str
    revision: str
    licence: str
    commercial: bool
    loader: str = ""
    profiles: tuple[str, ...] = ()
    lineage: tuple[Upstream, ...] = ()
    excluded_territories: tuple[str, ...] = ()
    vram_gb: float = 0.0
    notes: str = ""
    tiny: bool = False
    twin: str = ""
    load_kwargs: tuple[tuple[str, object], ...] = ()
    #: what ``studio models pull`` fetches: configs, tokenizers and safetensors weights, never pickles
    allow_patterns: tuple[str, ...] = ("*.json", "*.txt", "*.safetensors")
    convert: tuple[str, ...] = ()
    converter: str = ""
    #: key of the registered model this one is loaded onto (an adapter's base); pulled with it
    runs_on: str = ""

    @property
    def inherited(self) -> tuple[Upstream, ...]:
        """The upstream models whose licences this one inherits (fine-tuned or initialised from)."""
        return tuple(u for u in self.lineage if u.how == "base")

    @property
    def licence_line(self) -> str:
        use = "commercial use allowed" if self.commercial else "NOT for commercial use"
        where = f"; excluded: {', '.join(self.excluded_territories)}" if self.excluded_territories else ""
        inherits = "".join(f" + inherits {u.licence} from {u.name}" for u in self.inherited)
        return f"{self.licence}{inherits} ({use}{where})"

    @property
    def lineage_line(self) -> str:
        return "; ".join(u.line for u in self.lineage) or "no upstream model"


@dataclass(frozen=True)
class MeshBackend:
    """A 3D backend: how it is listed and chosen, which model role runs it, and its models per profile.

    ``resolution_option`` is the ``MeshOptions`` field that ``--resolution N`` sets for this backend
    (``resolution``: relief columns; ``grid``: the marching-cubes field grid). ``needs_prompt``: the image is
    read as a sketch and a prompt must go with it. ``models`` are registered with the backend.
    """

    name: str
    role: str
    inputs: str  # image | image or text
    good_for: str
    text_role: str = ""
    resolution_option: str = "grid"
    #: the image is a sketch that goes with a prompt saying what it shows (TripoSG-scribble)
    needs_prompt: bool = False
    models: tuple[ModelEntry, ...] = ()


#: Every registered model by key, in registration order.
CATALOGUE: dict[str, ModelEntry] = {}
#: Every registered 3D backend by name, in registration order.
MESH_BACKENDS: dict[str, MeshBackend] = {}
#: Role -> model key per profile, filled by :func:`register` from each entry's ``profiles``.
PROFILES: dict[str, dict[str, str]] = {p: {} for p in PROFILE_NAMES}


def _check(entry: ModelEntry) -> None:
    where = f"model entry {entry.key!r}"
    if entry.key in CATALOGUE:
        raise ValueError(f"{where}: the key is already registered")
    for p in entry.profiles:
        if p not in PROFILES:
            raise ValueError(f"{where}: profile {p!r} is not one of {', '.join(PROFILES)}")
        taken = PROFILES[p].get(entry.role)
        if taken:
            raise ValueError(f"{where}: profile {p!r} already uses {taken!r} for the role {entry.role!r}")
    if entry.tiny and entry.profiles not in ((), ("tiny",)) or not entry.tiny and "tiny" in entry.profiles:
        raise ValueError(f"{where}: tiny twins belong to the tiny profile only, and the tiny profile to twins")
    if entry.tiny and not entry.twin:
        raise ValueError(f"{where}: a tiny entry needs a twin builder")
    if any(u.how not in ("base", "part", "data") for u in entry.lineage):
        raise ValueError(f"{where}: an upstream's 'how' is one of base, part, data")
    bad_base = [u.name for u in entry.inherited if not u.commercial]
    if entry.commercial and bad_base:
        raise ValueError(f"{where}: marked commercial, but it inherits the non-commercial licence of "
                         f"{', '.join(bad_base)}")
    if entry.profiles and not entry.commercial:
        raise ValueError(f"{where}: only commercially usable models may be a profile default")
    if entry.runs_on:
        base = CATALOGUE.get(entry.runs_on)
        if base is None:
            raise ValueError(f"{where}: runs_on {entry.runs_on!r} is not a registered model")
        if base.tiny != entry.tiny:
            raise ValueError(f"{where}: a tiny twin runs on a tiny twin, a published model on a published one")
    if bool(entry.convert) != bool(entry.converter):
        raise ValueError(f"{where}: 'convert' (pickle files to fetch) and 'converter' go together")


def register(item: ModelEntry | MeshBackend) -> ModelEntry | MeshBackend:
    """Add a model, or a 3D backend with its models, to every listing; returns it."""
    if isinstance(item, MeshBackend):
        if item.name in MESH_BACKENDS:
            raise ValueError(f"3D backend {item.name!r} is already registered")
        if item.resolution_option not in ("resolution", "grid"):
            raise ValueError(f"3D backend {item.name!r}: resolution_option must be 'resolution' or 'grid'")
        slots = [(p, m.role) for m in item.models for p in m.profiles]
        if len(slots) != len(set(slots)):
            raise ValueError(f"3D backend {item.name!r}: two of its models claim the same profile and role")
        for model in item.models:
            if model.role not in (item.role, item.text_role):
                raise ValueError(f"3D backend {item.name!r}: model {model.key!r} has the role {model.role!r}, "
                                 f"expected {item.role!r}" + (f" or {item.text_role!r}" if item.text_role else ""))
            _check(model)
        for model in item.models:
            _add(model)
        MESH_BACKENDS[item.name] = item
        return item
    _check(item)
    _add(item)
    return item


def _add(entry: ModelEntry) -> None:
    CATALOGUE[entry.key] = entry
    for p in entry.profiles:
        PROFILES[p][entry.role] = entry.key


def unregister(name: str) -> None:
    """Remove a model (by key) or a 3D backend (by name, with its models) from every listing."""
    backend = MESH_BACKENDS.pop(name, None)
    keys = [m.key for m in backend.models] if backend else [name]
    for key in keys:
        entry = CATALOGUE.pop(key, None)
        if entry is None:
            raise KeyError(f"nothing registered under {key!r}")
        for p in entry.profiles:
            if PROFILES[p].get(entry.role) == key:
                del PROFILES[p][entry.role]


def roles() -> tuple[str, ...]:
    """Every role some registered model plays, in registration order."""
    return tuple(dict.fromkeys(e.role for e in CATALOGUE.values()))


def resolve(dotted: str):
    """``"package.module:Name.attr"`` -> the object (the one way the registry finds code)."""
    module_name, _, attr_path = dotted.partition(":")
    if not module_name or not attr_path:
        raise ValueError(f"dotted path {dotted!r} is not 'module:attribute'")
    obj = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def load_entry(entry: ModelEntry, path: Path, device: str, dtype=None, *, base_path: Path | None = None):
    """Load a model through its entry's loader with its name, revision, device and (if taken) dtype;
    an entry that runs on a base model also gets the base's local ``base_path`` (see :func:`base_of`)."""
    if not entry.loader:
        raise InvalidRequest(f"the {entry.role} model {entry.repo_id} is not loaded on its own "
                             "(it joins another role's pipeline)")
    loader = resolve(entry.loader)
    params = inspect.signature(loader).parameters
    kwargs = {"name" if "name" in params else "model_name": entry.repo_id, "revision": entry.revision,
              "device": device}
    if "dtype" in params:
        kwargs["dtype"] = dtype
    if entry.runs_on:
        if base_path is None:
            raise InvalidRequest(f"the {entry.role} model {entry.repo_id} runs on "
                                 f"{CATALOGUE[entry.runs_on].repo_id}; its folder (base_path) is needed to load it")
        base = CATALOGUE[entry.runs_on]
        kwargs.update(base_path=Path(base_path), base_name=base.repo_id, base_revision=base.revision)
    kwargs.update(dict(entry.load_kwargs))
    return loader(path, **kwargs)


# ---------------------------------------------------------------------------- entries
_TINY_2D = "pipelines.testing:materialize_tiny_models"
_TINY_3D = "pipelines.testing:materialize_tiny_mesh_models"
_SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
_RAIL = "CreativeML Open RAIL++-M"
_CLIP_L = Upstream("openai/clip-vit-large-patch14", "MIT", how="part", what="CLIP ViT-L/14 encoder")

register(ModelEntry(
    key="tiny-concept", role="concept", repo_id="design-studio/tiny-stable-diffusion", revision="local",
    licence=MADE_HERE, commercial=True, tiny=True, profiles=("tiny",), twin=_TINY_2D,
    loader="pipelines.concept:ConceptModel.load",
    notes="64x64 random-weight twin of Stable Diffusion; shows the flow, not a picture",
))
register(ModelEntry(
    key="sdxl-base", role="concept", repo_id=_SDXL, revision="main", licence=_RAIL, commercial=True,
    profiles=("standard",), loader="pipelines.concept:ConceptModel.load", vram_gb=10,
    lineage=(_CLIP_L, Upstream("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "MIT",
                               how="part", what="OpenCLIP ViT-bigG/14 encoder")),
    notes="1024x1024 product shots; the licence's use-based restrictions apply to everything made with it",
    # the diffusers folders only: not the 7 GB single-file checkpoint, fp16 variants or ONNX/Flax
    allow_patterns=("model_index.json", "*/config.json", "*/*.txt", "tokenizer*/*.json",
                    "scheduler/*.json", "*/diffusion_pytorch_model.safetensors", "text_encoder*/model.safetensors"),
))
register(ModelEntry(
    key="flux-schnell", role="concept", repo_id="black-forest-labs/FLUX.1-schnell", revision="main",
    licence="Apache-2.0", commercial=True, profiles=("quality",), loader="pipelines.concept:ConceptModel.load",
    vram_gb=24,
    lineage=(_CLIP_L, Upstream("google/t5-v1_1-xxl", "Apache-2.0", how="part", what="T5 text encoder")),
    notes=("4-step distilled; for 24 GB+ GPUs (FLUX.1-dev is non-commercial and not listed). "
           "No sketch ControlNet for FLUX is commercially usable today (the canny/union ones are "
           "FLUX.1-dev derivatives under its non-commercial licence): sketches use img2img"),
    allow_patterns=("model_index.json", "*/config.json", "*/*.txt", "tokenizer*/*.json", "tokenizer*/*.model",
                    "scheduler/*.json", "*/*.safetensors", "*/*.safetensors.index.json"),
))
register(ModelEntry(
    key="tiny-sketch", role="sketch", repo_id="design-studio/tiny-controlnet-scribble", revision="local",
    licence=MADE_HERE, commercial=True, tiny=True, profiles=("tiny",), twin=_TINY_2D,
    notes="random-weight twin of a scribble ControlNet for the tiny model; joins the concept pipeline",
))
register(ModelEntry(
    key="controlnet-scribble-sdxl", role="sketch", repo_id="xinsir/controlnet-scribble-sdxl-1.0", revision="main",
    licence="Apache-2.0", commercial=True, profiles=("standard",), vram_gb=3,
    lineage=(Upstream(_SDXL, _RAIL),),
    notes="sketch/scribble conditioning for SDXL (white lines on black); joins the concept pipeline",
    allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
))
register(ModelEntry(
    key="tiny-depth", role="depth", repo_id="design-studio/tiny-depth-anything", revision="local",
    licence=MADE_HERE, commercial=True, tiny=True, profiles=("tiny",), twin=_TINY_2D,
    loader="pipelines.mesh.depth_relief:DepthReliefBackend.load",
    notes="random-weight twin of Depth Anything on a tiny DINOv2 backbone",
))
register(ModelEntry(
    key="depth-anything-v2-small", role="depth", repo_id="depth-anything/Depth-Anything-V2-Small-hf",
    revision="main", licence="Apache-2.0", commercial=True, profiles=("standard", "quality"), vram_gb=1,
    loader="pipelines.mesh.depth_relief:DepthReliefBackend.load",
    lineage=(Upstream("facebook/dinov2-small", "Apache-2.0", what="DINOv2 ViT-S/14 encoder"),),
    notes="only the Small variant is Apache-2.0 (Base/Large are CC-BY-NC-4.0)",
))

register(MeshBackend(
    "depth-relief", role="depth", inputs="image", resolution_option="resolution",
    good_for="flat and thin parts: straps, handles, leather panels (front view only)",
))
register(MeshBackend(
    "lrm", role="lrm", inputs="image", good_for="whole closed objects from one picture (TripoSR class)",
    models=(
        ModelEntry(
            key="tiny-lrm", role="lrm", repo_id="design-studio/tiny-lrm", revision="local", licence=MADE_HERE,
            commercial=True, tiny=True, profiles=("tiny",), twin=_TINY_3D, loader="pipelines.mesh.lrm:LRMBackend.load",
            notes="TripoSR-class network, tiny, random weights with a planted round prior",
        ),
        ModelEntry(
            key="triposr", role="lrm", repo_id="stabilityai/TripoSR", revision="main", licence="MIT",
            commercial=True, profiles=("standard", "quality"), vram_gb=6, loader="pipelines.mesh.lrm:LRMBackend.load",
            lineage=(Upstream("facebook/dino-vitb16", "Apache-2.0", what="DINO ViT-B/16 image tokenizer"),
                     Upstream("Objaverse renders", "ODC-By-1.0 collection; each object under "
                              "its creator's Creative Commons licence", how="data", what="curated subset")),
            notes="published as config.yaml + model.ckpt (a pickle): pull converts it to model.safetensors",
            allow_patterns=("config.yaml",), convert=("model.ckpt",),
            converter="pipelines.mesh.lrm:convert_triposr_checkpoint",
        ),
    ),
))
register(MeshBackend(
    "shap-e", role="shap-e", text_role="shap-e-text", inputs="image or text",
    good_for="rough closed volumes; text -> 3D",
    models=(
        ModelEntry(
            key="tiny-shap-e-img2img", role="shap-e", repo_id="design-studio/tiny-shap-e-img2img", revision="local",
            licence=MADE_HERE, commercial=True, tiny=True, profiles=("tiny",), twin=_TINY_3D,
            loader="pipelines.mesh.shap_e:ShapEBackend.load", load_kwargs=(("steps", 2),),
            notes="random-weight ShapEImg2ImgPipeline",
        ),
        ModelEntry(
            key="tiny-shap-e", role="shap-e-text", repo_id="design-studio/tiny-shap-e", revision="local",
            licence=MADE_HERE, commercial=True, tiny=True, profiles=("tiny",), twin=_TINY_3D,
            loader="pipelines.mesh.shap_e:ShapEBackend.load", load_kwargs=(("steps", 2),),
            notes="random-weight ShapEPipeline (text -> 3D)",
        ),
        ModelEntry(
            key="shap-e-img2img", role="shap-e", repo_id="openai/shap-e-img2img", revision="main", licence="MIT",
            commercial=True, profiles=("standard", "quality"), vram_gb=4,
            loader="pipelines.mesh.shap_e:ShapEBackend.load", load_kwargs=(("steps", 64),),
            lineage=(Upstream("openai/clip-vit-large-patch14", "MIT", how="part", what="CLIP ViT-L/14 image encoder"),),
            notes="image -> 3D; low fidelity, closed blobby shapes",
        ),
        ModelEntry(
            key="shap-e", role="shap-e-text", repo_id="openai/shap-e", revision="main", licence="MIT",
            commercial=True, profiles=("standard", "quality"), vram_gb=4,
            loader="pipelines.mesh.shap_e:ShapEBackend.load", load_kwargs=(("steps", 64),),
            lineage=(Upstream("openai/clip-vit-large-patch14", "MIT", how="part", what="CLIP ViT-L/14 text encoder"),),
            notes="text -> 3D; low fidelity",
        ),
    ),
))

_TRIPOSG_LOADER = "pipelines.mesh.triposg:TripoSGBackend.load"
_DINOV2_L = Upstream("facebook/dinov2-large", "Apache-2.0", how="part", what="DINOv2 ViT-L/14 image encoder")
# TripoSG runs on our own port (pipelines/mesh/triposg) on diffusers and transformers (Apache-2.0), with
# scikit-image marching cubes (BSD-3-Clause) and our own background cut-out instead of upstream's RMBG-1.4
# (non-commercial). Upstream's transformer source adapts HunyuanDiT code under the Tencent Hunyuan licence;
# none of that source is used here.
_TRIPOSG_FILES = ("model_index.json", "*/config.json", "*/preprocessor_config.json", "*/scheduler_config.json",
                  "*/*.safetensors", "*/*.safetensors.index.json")
register(MeshBackend(
    "triposg", role="triposg", inputs="image",
    good_for="detailed closed shapes from one picture (TripoSG, MIT); the standard profile's default",
    models=(
        ModelEntry(
            key="tiny-triposg", role="triposg", repo_id="design-studio/tiny-triposg", revision="local",
            licence=MADE_HERE, commercial=True, tiny=True, profiles=("tiny",), twin=_TINY_3D,
            loader=_TRIPOSG_LOADER, load_kwargs=(("steps", 2), ("num_tokens", 64)),
            notes="twin of VAST-AI/TripoSG in its published layout, narrow and shallow, with a planted round prior",
        ),
        ModelEntry(
            key="triposg", role="triposg", repo_id="VAST-AI/TripoSG", revision="main", licence="MIT",
            commercial=True, profiles=("standard", "quality"), vram_gb=8, loader=_TRIPOSG_LOADER,
            lineage=(_DINOV2_L,),
            notes=("image -> detailed closed shape (1.5 B rectified-flow DiT + SDF VAE; 50 steps, 2048 tokens); "
                   "our own port and background cut-out (not RMBG-1.4)"),
            allow_patterns=_TRIPOSG_FILES,
        ),
    ),
))
register(MeshBackend(
    "triposg-scribble", role="triposg-scribble", inputs="sketch and prompt", needs_prompt=True,
    good_for="a designer's sketch and a short prompt -> shape in one step (TripoSG-scribble, MIT)",
    models=(
        ModelEntry(
            key="tiny-triposg-scribble", role="triposg-scribble", repo_id="design-studio/tiny-triposg-scribble",
            revision="local", licence=MADE_HERE, commercial=True, tiny=True, profiles=("tiny",), twin=_TINY_3D,
            loader=_TRIPOSG_LOADER, load_kwargs=(("steps", 2), ("num_tokens", 64)),
            notes="twin of VAST-AI/TripoSG-scribble (DINOv2 + CLIP text conditions) in its published layout",
        ),
        ModelEntry(
            key="triposg-scribble", role="triposg-scribble", repo_id="VAST-AI/TripoSG-scribble", revision="main",
            licence="MIT", commercial=True, profiles=("standard", "quality"), vram_gb=6, loader=_TRIPOSG_LOADER,
            lineage=(_DINOV2_L, Upstream("OpenAI CLIP", "MIT", how="part",
                                         what="CLIP text encoder and tokenizer")),
            notes=("sketch + prompt -> shape in one pass (CFG-distilled, 16 steps, 512 tokens); same port and "
                   "background cut-out as triposg"),
            allow_patterns=(*_TRIPOSG_FILES, "tokenizer/*"),
        ),
    ),
))

# Multi-view texturing: MV-Adapter paints six views of a mesh on an SDXL-class base (SDXL even where the
# concept model is FLUX); the geometry maps come from the studio's own rasteriser (pipelines.render).
_MV_LOADER = "pipelines.texture.mv_adapter:MultiViewGenerator.load_adapter"
register(ModelEntry(
    key="tiny-mv-adapter", role="multiview", repo_id="design-studio/tiny-mv-adapter", revision="local",
    licence=MADE_HERE, commercial=True, tiny=True, profiles=("tiny",), runs_on="tiny-concept",
    twin="pipelines.twins.mv_adapter:materialize_tiny_multiview", loader=_MV_LOADER,
    notes="MV-Adapter twin shaped for the tiny (SD-1.5-shaped) concept UNet; random weights",
))
register(ModelEntry(
    key="mv-adapter", role="multiview", repo_id="huanngzh/mv-adapter", revision="main", licence="Apache-2.0",
    commercial=True, profiles=("standard", "quality"), vram_gb=14, runs_on="sdxl-base", loader=_MV_LOADER,
    lineage=(Upstream(_SDXL, _RAIL, what="SDXL base the adapter is trained on and runs on"),),
    notes=("image + geometry -> 6 views (mvadapter_ig2mv_sdxl); runs on stabilityai/stable-diffusion-xl-base-1.0, "
           "so its outputs also carry the CreativeML Open RAIL++-M use restrictions; geometry maps come from "
           "the studio's own rasteriser (the upstream texture pipeline's nvdiffrast is not used)"),
    allow_patterns=("mvadapter_ig2mv_sdxl.safetensors",),
))
#: The base model MV-Adapter runs on per profile (SDXL even where the concept model is FLUX).
MULTIVIEW_BASE: dict[str, str] = {p: CATALOGUE[PROFILES[p]["multiview"]].runs_on for p in PROFILE_NAMES}

#: How objects are cut out of their background for image -> 3D (no model: see pipelines.background).
BACKGROUND_REMOVAL = ("the image's own alpha channel, else a threshold against a plain studio backdrop; "
                      "no segmentation model (none with a commercially usable lineage is ported yet)")

#: 3D defaults per profile (default backend, face budget, texture size, field grid, turntable, preview size,
#: texture mode and the multi-view painter's view size and steps).
MESH_DEFAULTS: dict[str, dict] = {
    "tiny": {"backend": "depth-relief", "face_budget": 5000, "texture_size": 256, "grid": 32,
             "turntable_frames": 8, "preview_size": 160,
             "texture": "project", "multiview_size": 32, "multiview_steps": 2},
    "standard": {"backend": "triposg", "face_budget": 40000, "texture_size": 1024, "grid": 256,
                 "turntable_frames": 36, "preview_size": 384,
                 "texture": "project", "multiview_size": 768, "multiview_steps": 50},
    "quality": {"backend": "triposg", "face_budget": 100000, "texture_size": 2048, "grid": 320,
                "turntable_frames": 48, "preview_size": 512,
                "texture": "project", "multiview_size": 768, "multiview_steps": 50},
}

#: How a mesh is textured: projecting the concept image (fast), or painting six generated views.
TEXTURE_MODES = ("project", "multiview")

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


# ---------------------------------------------------------------------------- lookups
@dataclass
class ModelStatus:
    entry: ModelEntry
    path: Path | None
    how_to_get: str = field(default="")

    @property
    def available(self) -> bool:
        return self.path is not None


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise InvalidRequest(f"profile {profile!r} is not one of {', '.join(PROFILES)}")


def entry_for(profile: str, role: str) -> ModelEntry:
    """The catalogue entry a profile uses for a role."""
    _check_profile(profile)
    key = PROFILES[profile].get(role)
    if key is None:
        raise InvalidRequest(f"profile {profile!r} has no model for the role {role!r}")
    return CATALOGUE[key]


def mesh_backend(name: str) -> MeshBackend:
    """A registered 3D backend by name, or ``InvalidRequest`` listing the names."""
    backend = MESH_BACKENDS.get(name)
    if backend is None:
        raise InvalidRequest(f"3D backend {name!r} is not one of {', '.join(MESH_BACKENDS)}")
    return backend


def backends_for(profile: str) -> list[tuple[MeshBackend, ModelEntry]]:
    """The 3D backends this profile can run, each with the model it would use (listing order)."""
    _check_profile(profile)
    return [(b, entry_for(profile, b.role)) for b in MESH_BACKENDS.values() if b.role in PROFILES[profile]]


def profile_models(profile: str) -> list[tuple[str, ModelEntry]]:
    """(role, entry) of every model a profile needs: each role's model, then the base models those run
    on (role ``"<role> base"``) unless already listed. ``studio models pull`` and ``status`` read this."""
    _check_profile(profile)
    out = [(role, CATALOGUE[key]) for role, key in PROFILES[profile].items()]
    keys = {e.key for _, e in out}
    for role, entry in list(out):
        if entry.runs_on and entry.runs_on not in keys:
            out.append((f"{role} base", CATALOGUE[entry.runs_on]))
            keys.add(entry.runs_on)
    return out


def base_of(entry: ModelEntry, models_dir: Path) -> tuple[ModelEntry, Path] | None:
    """The base model an entry runs on and its local folder; None for an entry with no base;
    ``ModelMissing`` saying how to get a base that is not on this machine."""
    if not entry.runs_on:
        return None
    base = CATALOGUE[entry.runs_on]
    path = local_path(base, models_dir)
    if path is None:
        raise ModelMissing(f"{entry.repo_id} runs on {base.repo_id} ({base.licence_line}), which is not on this "
                           f"machine; `studio models pull` fetches it with {entry.repo_id}, or put its folder at "
                           f"{Path(models_dir) / base.repo_id}")
    return base, path


def multiview_base(profile: str, models_dir: Path) -> tuple[ModelEntry, Path]:
    """The SDXL-class base MV-Adapter runs on in this profile, or ``ModelMissing`` saying how to get it."""
    return base_of(entry_for(profile, "multiview"), models_dir)


def local_path(entry: ModelEntry, models_dir: Path) -> Path | None:
    """Where the entry's weights are on this machine, or None. Never downloads anything."""
    if entry.tiny:
        return Path(resolve(entry.twin)(Path(models_dir) / "tiny")[entry.role])
    candidate = Path(models_dir) / entry.repo_id
    # a config at the top, or (a single-file adapter) one of the exact file names pull fetches
    exact = tuple(p for p in entry.allow_patterns if not any(c in p for c in "*?[/"))
    if any((candidate / name).exists() for name in ("model_index.json", "config.json", "config.yaml", *exact)):
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
    """Availability of every model a profile needs (every role), with instructions for the missing ones."""
    out = []
    for role, entry in profile_models(profile):
        if entry.tiny and not build_tiny:
            out.append(ModelStatus(entry, Path(models_dir) / "tiny"))
            continue
        path = local_path(entry, models_dir)
        how = "" if path else (
            f"run `studio models pull {profile}` (add --source DIR for a local mirror holding {entry.repo_id}/), "
            f"or put its folder at {Path(models_dir) / entry.repo_id}"
        )
        out.append(ModelStatus(entry, path, how))
    return out


def require(profile: str, role: str, models_dir: Path) -> tuple[ModelEntry, Path]:
    """The entry and local path for a role, or ``ModelMissing`` saying how to get it."""
    entry = entry_for(profile, role)
    path = local_path(entry, models_dir)
    if path is None:
        raise ModelMissing(
            f"the {role} model {entry.repo_id} ({entry.licence_line}) is not on this machine; "
            f"run `studio models pull {profile}`, put its folder at {Path(models_dir) / entry.repo_id}, "
            "or start with --profile tiny"
        )
    return entry, path


def locked_revision(entry: ModelEntry, models_dir: Path | None) -> str:
    """The commit the lock file pinned for an entry, else the revision the entry asks for."""
    if entry.tiny or models_dir is None:
        return entry.revision
    import json

    lock = Path(models_dir) / "models.lock.json"
    try:
        item = json.loads(lock.read_text())["models"].get(entry.repo_id, {})
    except (OSError, ValueError, KeyError):
        return entry.revision
    return item.get("revision", entry.revision)


def model_identity(profile: str, *, mesh: str = "", sketch: bool = False, models_dir: Path | None = None) -> dict:
    """Which models (repository and pinned revision) make an output: the concept model, the sketch
    model when a sketch conditions it, and the model of the chosen 3D backend."""
    def ident(entry: ModelEntry) -> list[str]:
        return [entry.repo_id, locked_revision(entry, models_dir)]

    out = {"concept": ident(entry_for(profile, "concept"))}
    if sketch and PROFILES[profile].get("sketch"):
        out["sketch"] = ident(entry_for(profile, "sketch"))
    if mesh:
        out["mesh"] = [mesh, *ident(entry_for(profile, mesh_backend(mesh).role))]
    return out
