"""One loaded model serves every mode; variations and refinements keep their lineage; OOM is survived."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import snapshot_files
from PIL import Image

from design_studio.errors import InvalidRequest, ResourceExhausted


def pixels(studio, design) -> np.ndarray:
    with Image.open(studio.store.file_path(design)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_switching_mode_reuses_the_loaded_modules(studio, tmp_path):
    from test_sketch import paper_scan

    studio.generate_concepts("a loafer", n=1, seed=1)
    model = studio.models.get("concept")
    text_modules = {name: getattr(model.pipe, name) for name in ("unet", "vae", "text_encoder", "tokenizer")}
    path = tmp_path / "s.png"
    paper_scan().save(path)
    first = studio.generate_concepts("a loafer", n=1, seed=1, sketch=path)
    studio.generate_concepts("a loafer", n=1, seed=1, init_image=studio.store.file_path(first[0]), strength=0.5)
    studio.generate_concepts("a loafer", n=1, seed=1)
    assert studio.models.get("concept") is model
    for mode in ("img2img", "sketch"):
        pipe = model.pipeline(mode)
        for name, module in text_modules.items():
            assert getattr(pipe, name) is module, f"{mode} pipeline has its own {name}"
    assert model.pipeline("sketch").controlnet is model.controlnet
    assert type(model.pipeline("sketch")).__name__ == "StableDiffusionControlNetPipeline"
    assert type(model.pipeline("img2img")).__name__ == "StableDiffusionImg2ImgPipeline"
    assert model.pipeline("sketch") is model.pipeline("sketch")  # built once


def test_variations_point_to_their_parent_and_differ(studio):
    parent = studio.generate_concepts("a silk scarf", n=1, seed=7)[0]
    variations = studio.vary_design(parent.id, n=3, strength=0.5)
    assert [v.parent_id for v in variations] == [parent.id] * 3
    assert len({v.seed for v in variations} | {parent.seed}) == 4
    for v in variations:
        assert v.params["mode"] == "img2img" and v.params["relation"] == "variation" and v.params["strength"] == 0.5
        assert v.params["parent_id"] == parent.id
    assert [d.id for d in studio.store.lineage(variations[0].id)] == [parent.id, variations[0].id]
    assert {c.id for c in studio.store.children(parent.id)} == {v.id for v in variations}
    assert np.abs(pixels(studio, variations[0]) - pixels(studio, variations[1])).mean() > 1.0


def test_refine_keeps_the_seed_and_changes_the_prompt(studio):
    parent = studio.generate_concepts("a gold bracelet", n=1, seed=42, scheduler="euler")[0]
    again = studio.refine_design(parent.id, "a gold bracelet")
    refined = studio.refine_design(parent.id, "a gold bracelet with pearls")
    assert refined.seed == parent.seed and refined.parent_id == parent.id
    assert refined.prompt == "a gold bracelet with pearls" and refined.params["scheduler"] == "euler"
    assert np.abs(pixels(studio, again) - pixels(studio, parent)).max() <= 2, "same seed + prompt must reproduce"
    assert np.abs(pixels(studio, refined) - pixels(studio, parent)).mean() > 0.5


def test_reuse_settings_gives_back_the_form(studio):
    design = studio.generate_concepts("a wallet", n=2, seed=9, preset="small-leather-goods", speed="final",
                                      scheduler="dpmpp_2m", guidance=3.5)[1]
    form = studio.reuse_settings(design.id)
    assert form["prompt"] == "a wallet" and form["preset"] == "small-leather-goods"
    assert form["seed"] == 10 and form["steps"] == 4 and form["speed"] == "final"
    assert form["scheduler"] == "dpmpp_2m" and form["guidance"] == 3.5
    again = studio.generate_concepts(form["prompt"], n=1, seed=form["seed"], preset=form["preset"],
                                     steps=form["steps"], scheduler=form["scheduler"], guidance=form["guidance"])
    assert np.abs(pixels(studio, again[0]) - pixels(studio, design)).max() <= 2


def test_scheduler_and_speed_presets(studio):
    draft = studio.generate_concepts("a watch", n=1, seed=3, speed="draft", scheduler="unipc")[0]
    assert draft.params["steps"] == 2 and draft.params["scheduler"] == "unipc" and draft.params["speed"] == "draft"
    default = studio.generate_concepts("a watch", n=1, seed=3)[0]
    assert default.params["scheduler"] == "ddim"
    assert "flow_euler" not in studio.scheduler_names()
    with pytest.raises(InvalidRequest, match="scheduler 'flow_euler' does not work"):
        studio.generate_concepts("a watch", n=1, scheduler="flow_euler")
    with pytest.raises(InvalidRequest, match="speed 'turbo'"):
        studio.generate_concepts("a watch", n=1, speed="turbo")


class InjectedOOM:
    """A fault in the tiny UNet: out of memory whenever it is asked for more than ``max_batch`` rows."""

    def __init__(self, unet, max_batch: int):
        self.max_batch, self.raised = max_batch, 0
        self.handle = unet.register_forward_pre_hook(self)

    def __call__(self, module, args):
        import torch

        if args[0].shape[0] > self.max_batch:
            self.raised += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")


def test_out_of_memory_retries_with_smaller_batches_and_says_so(studio):
    reference = studio.generate_concepts("a sneaker", n=3, seed=20)
    fault = InjectedOOM(studio.models.get("concept").pipe.unet, max_batch=2)  # 2 rows = one image with guidance
    try:
        designs = studio.generate_concepts("a sneaker", n=3, seed=20)
    finally:
        fault.handle.remove()
    assert fault.raised >= 1 and len(designs) == 3
    notes = designs[0].params["memory_fallbacks"]
    assert any("retried 1 at a time" in n for n in notes), notes
    for a, b in zip(reference, designs):  # per-image generators: splitting changes nothing
        assert np.abs(pixels(studio, a) - pixels(studio, b)).max() <= 2


def test_out_of_memory_at_batch_one_is_a_clear_error_and_writes_nothing(studio):
    studio.generate_concepts("warm up", n=1, seed=1)
    before, count = snapshot_files(studio.settings.files_dir), len(studio.store.designs())
    fault = InjectedOOM(studio.models.get("concept").pipe.unet, max_batch=0)
    try:
        with pytest.raises(ResourceExhausted, match="ran out of memory even with one image at a time, VAE"):
            studio.generate_concepts("a sneaker", n=2, seed=20)
    finally:
        fault.handle.remove()
    assert snapshot_files(studio.settings.files_dir) == before and len(studio.store.designs()) == count


def test_memory_modes_are_applied_and_recorded(settings):
    from design_studio.services import Studio

    settings.vae_slicing = settings.vae_tiling = True
    studio = Studio(settings)
    design = studio.generate_concepts("a ring", n=2, seed=1)[0]
    assert design.params["memory_modes"] == ["SDPA attention", "VAE slicing", "VAE tiling"]
    vae = studio.models.get("concept").pipe.vae
    assert vae.use_slicing and vae.use_tiling


@pytest.mark.parametrize("kwargs, message", [
    ({"sketch": "BLANK"}, "sketch is empty"),
    ({"sketch": "HUGE"}, "over the limit"),
    ({"init_image": "HUGE", "strength": 0.5}, "over the limit"),
    ({"adapters": ["no-such-style:0.7"]}, "adapter 'no-such-style' is not known"),
    ({"adapters": ["bad:weight"]}, "weight 'weight' is not a number"),
    ({"sketch": "OK", "strength": 1.5}, "strength must be between 0.0 and 1.0"),
    ({"init_image": "OK", "strength": -0.1}, "strength must be between 0.0 and 1.0"),
    ({"init_image": "OK", "strength": 0.1, "steps": 2}, "leaves no denoising step"),
    ({"strength": 0.5}, "strength applies to a sketch or a starting image"),
    ({"sketch": "OK", "init_image": "OK"}, "either a sketch or a starting image"),
    ({"preset": "hat"}, "style preset 'hat' does not exist"),
    ({"sketch": "OK", "sketch_mode": "magic"}, "sketch mode 'magic'"),
])
def test_bad_inputs_are_refused_before_any_work(studio, tmp_path, kwargs, message):
    from design_studio.errors import StudioError
    from test_sketch import paper_scan

    studio.settings.max_image_pixels = 500 * 500
    files = {"BLANK": tmp_path / "blank.png", "HUGE": tmp_path / "huge.png", "OK": tmp_path / "ok.png"}
    Image.new("RGB", (300, 300), "white").save(files["BLANK"])
    Image.new("RGB", (600, 600), "white").save(files["HUGE"])
    paper_scan().save(files["OK"])
    kwargs = {k: files.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    before = snapshot_files(studio.settings.data_dir / "files")
    with pytest.raises(StudioError, match=message):
        studio.generate_concepts("a bag", n=1, seed=1, **kwargs)
    assert studio.store.designs() == [] and snapshot_files(studio.settings.data_dir / "files") == before
    assert studio.models.loaded("concept") is None  # refused before the model was even loaded
