"""SDXL and FLUX through ConceptModel: text, sketch (SDXL ControlNet / FLUX img2img fallback) and
img2img (variations, refine) on tiny models saved in the published folder layout."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipelines.concept import ConceptModel, ConceptRequest
from pipelines.errors import InvalidInput


@pytest.fixture(scope="module")
def xl_models(tmp_path_factory):
    from pipelines.testing_xl import materialize_tiny_xl_models

    return materialize_tiny_xl_models(tmp_path_factory.mktemp("xl-models"))


def sketch(shape: str) -> Image.Image:
    image = Image.new("RGB", (64, 64))  # white lines on black, as the sketch cleaner hands over
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse((12, 12, 52, 52), outline="white", width=3)
    else:
        draw.rectangle((8, 20, 56, 44), outline="white", width=3)
    return image


def pixels(item) -> np.ndarray:
    return np.asarray(item.image, dtype=np.float32)


def request(**kw) -> ConceptRequest:
    values = dict(prompt="a red leather bag", n=2, seed=11, steps=2, width=64, height=64)
    values.update(kw)
    return ConceptRequest(**values)


def test_sdxl_text_sketch_and_img2img(xl_models):
    model = ConceptModel.load(xl_models["sdxl"], name="tiny-sdxl")
    assert type(model.pipe).__name__ == "StableDiffusionXLPipeline"
    assert model.size_multiple == 2  # the tiny VAE downsamples twice less than SDXL's (8)

    text = model.generate(request(guidance=5.0, negative_prompt="blurry"))
    assert [im.image.size for im in text] == [(64, 64)] * 2 and text[0].seed == 11 and text[1].seed == 12
    assert np.abs(pixels(text[0]) - pixels(text[1])).max() > 1  # one generator per image
    again = model.generate(request(guidance=5.0, negative_prompt="blurry", n=1))
    assert np.array_equal(pixels(again[0]), pixels(text[0]))  # the recorded seed reproduces the image

    # sketch -> image through the SDXL ControlNet, built from the loaded modules
    model.attach_controlnet(xl_models["sdxl-controlnet"], name="tiny-sdxl-scribble")
    assert model.sketch_backend == "controlnet"
    assert type(model.pipeline("sketch")).__name__ == "StableDiffusionXLControlNetPipeline"
    assert model.pipeline("sketch").unet is model.pipe.unet  # shared, not reloaded
    circle = model.generate(request(mode="sketch", image=sketch("circle"), strength=1.0, n=1))
    box = model.generate(request(mode="sketch", image=sketch("box"), strength=1.0, n=1))
    assert circle[0].params["sketch_backend"] == "controlnet"
    assert circle[0].params["sketch_model"] == "tiny-sdxl-scribble"
    assert np.abs(pixels(circle[0]) - pixels(box[0])).mean() > 0.5  # the sketch steers the image

    # variations / refine are img2img from a chosen image
    varied = model.generate(request(mode="img2img", image=text[0].image, strength=0.7, seed=40, steps=4))
    assert type(model.pipeline("img2img")).__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert [v.image.size for v in varied] == [(64, 64)] * 2
    assert np.abs(pixels(varied[0]) - pixels(text[0])).mean() > 0.5


def test_flux_text_and_img2img_sketch_fallback(xl_models):
    model = ConceptModel.load(xl_models["flux"], name="tiny-flux")
    assert type(model.pipe).__name__ == "FluxPipeline"
    assert not model.pipe.transformer.config.guidance_embeds  # schnell-shaped: no guidance embedding
    assert model.size_multiple == 4  # VAE factor 2 x the 2x2 packing (FLUX.1: 8 x 2 = 16)
    assert model.scheduler_names() == ["flow_euler"]

    text = model.generate(request(width=64, height=96))
    assert [im.image.size for im in text] == [(64, 96)] * 2
    assert np.abs(pixels(text[0]) - pixels(text[1])).max() > 1
    assert text[0].params["scheduler"] == "flow_euler"

    # img2img (variations, refine) keeps the asked size instead of the pipeline's default
    varied = model.generate(request(mode="img2img", image=text[0].image, strength=0.75, width=64, height=96, steps=4))
    assert type(model.pipeline("img2img")).__name__ == "FluxImg2ImgPipeline"
    assert [v.image.size for v in varied] == [(64, 96)] * 2
    assert np.abs(pixels(varied[0]) - pixels(text[0])).mean() > 0.5

    # no sketch model for FLUX: the sketch runs as img2img from the drawing on white paper; even a
    # loose sketch (strength 0) skips the first step, which would start from pure noise
    for strength in (0.8, 0.0):
        seen = []
        drawn = model.generate(request(mode="sketch", image=sketch("circle"), n=1, strength=strength),
                               on_step=lambda i, total: seen.append(total))
        other = model.generate(request(mode="sketch", image=sketch("box"), n=1, strength=strength))
        assert drawn[0].params["sketch_backend"] == "img2img" and drawn[0].image.size == (64, 64)
        assert drawn[0].params["img2img_strength"] <= 0.5 and seen == [1]  # 1 of the 2 steps runs
        assert np.abs(pixels(drawn[0]) - pixels(other[0])).mean() > 0.5, strength
    with pytest.raises(InvalidInput, match="at least 2 steps"):
        model.generate(request(mode="sketch", image=sketch("circle"), n=1, steps=1))


def test_size_that_does_not_suit_the_model_is_refused(xl_models):
    model = ConceptModel.load(xl_models["flux"], name="tiny-flux")
    model.pipe.vae.config.block_out_channels = [8, 8, 8, 8]  # pretend FLUX.1's 8x VAE: sizes in 16s
    try:
        assert model.size_multiple == 16
        with pytest.raises(InvalidInput, match="width 72 does not suit tiny-flux: it needs a multiple of 16"):
            model.generate(request(width=72, n=1))
    finally:
        model.pipe.vae.config.block_out_channels = [16, 32]
