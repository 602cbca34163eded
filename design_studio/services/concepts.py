"""Use cases of concept images: generate from text / sketch / image, vary, refine, reuse settings, import.

Every input (sketch, starting image, preset, adapters, scheduler, numbers) is checked before any
model work; files are written only after the images exist, so a refused request leaves no trace.
"""
from __future__ import annotations

import io
from pathlib import Path

from .. import catalog
from ..access import AccessPolicy, Actor
from ..bom import concept_bom, upload_bom
from ..errors import InvalidRequest
from ..settings import Settings
from ..store import Design, Store
from .base import ProgressFn, translate_errors
from .designs import DesignWriter, NewDesign
from .models import ModelCache
from .vault import VaultService

SPEEDS = ("draft", "final")


class ConceptService:
    """Given settings, the store, the model cache, the design writer, the vault and the access policy."""

    def __init__(self, settings: Settings, store: Store, models: ModelCache, designs: DesignWriter,
                 vault: VaultService, access: AccessPolicy):
        self.settings = settings
        self.store = store
        self.models = models
        self.designs = designs
        self.vault = vault
        self.access = access
        self._adapter_source = None  # set by use_adapter_source

    # ------------------------------------------------------------------ what the form offers
    def adapter_source(self):
        """Where adapters come from: the vault (when it can be unlocked) and the adapters folder, or whatever
        ``use_adapter_source`` set."""
        from pipelines.adapters import CombinedAdapterSource, DirectoryAdapterSource

        if self._adapter_source is not None:
            return self._adapter_source
        folder = DirectoryAdapterSource(self.settings.adapters_dir)
        vault = self.vault.adapter_source_if_unlocked()
        return folder if vault is None else CombinedAdapterSource([vault, folder])

    def use_adapter_source(self, source) -> None:
        """Plug in another ``pipelines.adapters.AdapterSource`` (e.g. the brand-guard vault)."""
        from pipelines.adapters import AdapterSource

        if not isinstance(source, AdapterSource):
            raise InvalidRequest(f"{source!r} does not provide names() and load(name)")
        self._adapter_source = source

    def adapter_names(self) -> list[str]:
        return self.adapter_source().names()

    def presets(self):
        from ..presets import PresetLibrary

        return PresetLibrary(self.settings.assets_dir / "presets", self.settings.presets_dir)

    def scheduler_names(self) -> list[str]:
        """Schedulers the loaded concept model supports (the profile's list before it is loaded)."""
        model = self.models.loaded("concept")
        if model is not None:
            return model.scheduler_names()
        return list(catalog.SCHEDULER_CHOICES[self.settings.profile])

    def speed_steps(self, speed: str) -> int:
        if speed not in SPEEDS:
            raise InvalidRequest(f"speed {speed!r} is not one of {', '.join(SPEEDS)}")
        return catalog.SPEED_PRESETS[self.settings.profile][speed]["steps"]

    # ------------------------------------------------------------------ the model, ready for every mode
    def _concept_model(self, *, sketch: bool = False):
        from pipelines.devices import MemoryOptions, apply_memory_options

        model = self.models.get("concept")
        with self.models.lock:
            if not getattr(model, "_studio_ready", False):
                s = self.settings
                options = MemoryOptions(attention=s.attention, vae_slicing=s.vae_slicing, vae_tiling=s.vae_tiling,
                                        offload=s.cpu_offload)
                model.memory_modes = apply_memory_options(model.pipe, options, model.device)
                model._studio_ready = True
            if sketch and model.controlnet is None:
                found = catalog.optional(self.settings.profile, "sketch", self.settings.resolved_models_dir)
                if found is not None:  # else: img2img from the sketch (recorded as such)
                    entry, path = found
                    model.attach_controlnet(path, name=entry.repo_id, revision=entry.revision)
        return model

    # ------------------------------------------------------------------ inputs
    def _read_image(self, source, label: str):
        """An uploaded image (path, bytes, PIL image or numpy array), size-checked."""
        import numpy as np
        from PIL import Image

        from pipelines.images import open_image
        from pipelines.sketch import check_pixels

        if isinstance(source, (str, Path, bytes)):
            return open_image(source, max_pixels=self.settings.max_image_pixels, name=label)
        if isinstance(source, np.ndarray):
            source = Image.fromarray(source)
        if isinstance(source, Image.Image):
            check_pixels(source, self.settings.max_image_pixels, label)
            return source
        raise InvalidRequest(f"{label}: expected an image file or picture, got {type(source).__name__}")

    def _sketch_lines(self, sketch, mode: str):
        from pipelines.sketch import compose_layers, sketch_to_lines

        if isinstance(sketch, dict):
            picture = compose_layers(sketch, max_pixels=self.settings.max_image_pixels)
        else:
            picture = self._read_image(sketch, "sketch")
        return sketch_to_lines(picture, mode=mode, max_pixels=self.settings.max_image_pixels)

    # ------------------------------------------------------------------ generate
    def generate_concepts(
        self,
        prompt: str,
        *,
        n: int | None = None,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        width: int | None = None,
        height: int | None = None,
        negative_prompt: str = "",
        project: str | None = None,
        actor: Actor | None = None,
        on_progress: ProgressFn | None = None,
        sketch=None,
        sketch_mode: str = "auto",
        init_image=None,
        strength: float | None = None,
        adapters=None,
        preset: str | None = None,
        scheduler: str | None = None,
        speed: str | None = None,
        seeds: list[int] | None = None,
        parent_id: int | None = None,
        relation: str = "",
        _lines_image=None,
        extra_params: dict | None = None,
    ) -> list[Design]:
        """Text (or sketch, or image) -> N concept images, each saved as a PNG with its parameters.

        ``extra_params`` (e.g. a batch run's item key) are added to each image's parameters, both in
        the PNG metadata and in the design record.
        """

        from pipelines.adapters import check_adapters, parse_adapters
        from pipelines.concept import ConceptRequest, check_request
        from pipelines.images import flatten_on_white

        actor = self.access.check(actor, "create")  # before any model work
        d = self.models.defaults
        with translate_errors():
            # 1. Resolve the form: preset, speed, images (all checked before any model work)
            if not isinstance(prompt, str) or not prompt.strip():
                raise InvalidRequest("prompt is empty; describe the product you want to see")
            user_prompt, user_negative = prompt, negative_prompt or ""
            style = None
            if preset:
                style = self.presets().get(preset)
                prompt, negative_prompt = style.prompt(prompt), style.negative(user_negative)
                if width is None and height is None:
                    width, height = style.size(d["width"], d["height"])
            if speed is not None and steps is None:
                steps = self.speed_steps(speed)
            elif speed is not None:
                self.speed_steps(speed)
            if sketch is not None and init_image is not None:
                raise InvalidRequest("give either a sketch or a starting image, not both")
            mode, image, lines = "text", None, None
            if _lines_image is not None:
                mode, image = "sketch", _lines_image
            elif sketch is not None:
                lines = self._sketch_lines(sketch, sketch_mode)
                mode, image = "sketch", lines.control
            elif init_image is not None:
                mode, image = "img2img", flatten_on_white(self._read_image(init_image, "starting image"))
                side = self.settings.max_side  # a big photo is fine as a start: it is resized to the output anyway
                image.thumbnail((side, side))
            elif strength is not None:
                raise InvalidRequest("strength applies to a sketch or a starting image; none was given")
            adapter_source = self.adapter_source()  # once: it may unlock the vault
            specs = check_adapters(parse_adapters(adapters), adapter_source)
            req = ConceptRequest(
                prompt=prompt, negative_prompt=negative_prompt or "",
                n=(len(seeds) if seeds else self.settings.default_images) if n is None else n,
                seed=seed, seeds=list(seeds or []),
                steps=d["steps"] if steps is None else steps,
                guidance=d["guidance"] if guidance is None else guidance,
                width=d["width"] if width is None else width,
                height=d["height"] if height is None else height,
                mode=mode, image=image, strength=strength, scheduler=scheduler, adapters=specs,
            )
            limits = self.models.concept_limits()
            check_request(req, limits)
            if parent_id is not None:
                parent = self.store.design(parent_id)

            # 2. Generate (the model loads once; every mode shares its modules)
            model = self._concept_model(sketch=(mode == "sketch"))
            on_step = None
            if on_progress is not None:
                def on_step(step: int, total: int) -> None:
                    on_progress(step / total, f"denoising step {step} of {total}")
            images = model.generate(req, limits=limits, on_step=on_step, adapter_source=adapter_source)

        # 3. Save the inputs that reproduce the images, then the images and their records
        extra: dict = {"user_prompt": user_prompt, "user_negative_prompt": user_negative,
                       "memory_modes": list(model.memory_modes)}
        if style is not None:
            extra["preset"] = style.category
        if speed is not None:
            extra["speed"] = speed
        if relation:
            extra["relation"] = relation
        if image is not None:
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            rel, digest = self.store.files.put(buf.getvalue(), ".png")
            key = "sketch" if mode == "sketch" else "init"
            extra.update({f"{key}_file": rel, f"{key}_sha256": digest})
            if lines is not None:
                extra.update(sketch_mode=lines.mode, sketch_inverted=lines.inverted)
        proj = self.store.project(project) if parent_id is None else None
        project_id = proj.id if proj is not None else parent.project_id
        items = []
        for item in images:
            params = dict(item.params, **extra, **(extra_params or {}))
            if parent_id is not None:
                params["parent_id"] = parent_id
            png_meta = dict(params, project=proj.name if proj else "", kind="image")
            params["bom"] = concept_bom(model.name, model.revision, params,  # inside the signed record
                                        self.settings.resolved_models_dir)
            items.append(NewDesign(
                kind="image", record_kind="concept", content=item.image, project_id=project_id, params=params,
                parent=parent if parent_id is not None else None, prompt=req.prompt,
                negative_prompt=req.negative_prompt, seed=item.seed, model=model.name, revision=model.revision,
                adapters=[f"{a['name']}:{a['weight']:g}" for a in params.get("adapters") or []],
                png_meta=png_meta,
            ))
        return self.designs.create(items, actor)

    # ------------------------------------------------------------------ iterate on a chosen design
    def _image_parent(self, design_id: int) -> Design:
        parent = self.store.design(design_id)
        if parent.kind != "image":
            raise InvalidRequest(f"design {design_id} is a {parent.kind}; choose an image design")
        return parent

    def vary_design(self, design_id: int, *, n: int = 4, strength: float = 0.6, seed: int | None = None,
                    prompt: str | None = None, actor: Actor | None = None, on_progress: ProgressFn | None = None) -> list[Design]:
        """N variations of a chosen image: img2img from it with new seeds; each points to it as parent."""
        parent = self._image_parent(design_id)
        p = parent.params or {}
        return self.generate_concepts(
            prompt or parent.prompt, negative_prompt=parent.negative_prompt, n=n, seed=seed,
            init_image=self.store.file_path(parent), strength=strength,
            steps=p.get("steps"), guidance=p.get("guidance"), width=p.get("width"), height=p.get("height"),
            scheduler=p.get("scheduler") if p.get("scheduler") in self.scheduler_names() else None,
            adapters=p.get("adapters") or [], parent_id=parent.id, relation="variation", actor=actor,
            on_progress=on_progress,
        )

    def refine_design(self, design_id: int, prompt: str, *, negative_prompt: str | None = None, actor: Actor | None = None,
                      on_progress: ProgressFn | None = None) -> Design:
        """The same image again with an edited prompt: same seed, mode, sketch/start image and settings."""
        parent = self._image_parent(design_id)
        p = parent.params or {}
        if parent.seed is None or "steps" not in p:
            raise InvalidRequest(f"design {design_id} was not generated here (no seed); use Variations instead")
        lines = None
        init = None
        if p.get("mode") == "sketch" and p.get("sketch_file"):
            from PIL import Image

            with Image.open(self.store.files.path(p["sketch_file"])) as img:
                lines = img.convert("RGB")
        elif p.get("mode") == "img2img" and p.get("init_file"):
            init = self.store.files.path(p["init_file"])
        preset = p.get("preset")
        if negative_prompt is None:  # with a preset, its negative prompt is added again below
            negative_prompt = p.get("user_negative_prompt", "") if preset else parent.negative_prompt
        designs = self.generate_concepts(
            prompt, negative_prompt=negative_prompt, preset=preset, seeds=[parent.seed], steps=p.get("steps"), guidance=p.get("guidance"), width=p.get("width"),
            height=p.get("height"), scheduler=p.get("scheduler") if p.get("scheduler") in self.scheduler_names() else None,
            adapters=p.get("adapters") or [], strength=p.get("strength") if (lines is not None or init) else None,
            init_image=init, _lines_image=lines, parent_id=parent.id, relation="refine", actor=actor,
            on_progress=on_progress,
        )
        return designs[0]

    def reuse_settings(self, design_id: int) -> dict:
        """The form values that made a design (prompt before the preset, seed, steps, adapters…)."""
        design = self.store.design(design_id)
        p = design.params or {}
        adapters = ", ".join(f"{a['name']}:{a['weight']:g}" for a in p.get("adapters") or [])
        return {
            "prompt": p.get("user_prompt", design.prompt),
            "negative_prompt": p.get("user_negative_prompt", design.negative_prompt),
            "preset": p.get("preset"), "seed": design.seed, "n": 1, "steps": p.get("steps"),
            "guidance": p.get("guidance"), "width": p.get("width"), "height": p.get("height"),
            "scheduler": p.get("scheduler"), "speed": p.get("speed"), "strength": p.get("strength"),
            "adapters": adapters, "mode": p.get("mode", "text"),
        }

    def import_image(self, source: str | Path | bytes, *, project: str | None = None, actor: Actor | None = None,
                     name: str | None = None) -> Design:
        """Record an uploaded image (validated, re-encoded as PNG) as an image design."""
        from pipelines.images import open_image

        actor = self.access.check(actor, "create")
        with translate_errors():
            image = open_image(source, max_pixels=self.settings.max_image_pixels, name=name)
        meta = {"model": "upload", "source_name": name or (str(source) if not isinstance(source, bytes) else ""),
                "bom": upload_bom()}
        proj = self.store.project(project)
        return self.designs.create([NewDesign(
            kind="image", record_kind="upload", content=image, project_id=proj.id, params=meta, model="upload",
            png_meta=meta,
        )], actor)[0]
