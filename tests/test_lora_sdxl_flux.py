"""Private LoRA training on SDXL and FLUX (tiny models in the published layout): the loss falls, the
adapter is a diffusers LoRA file with the architecture's key prefix, and loaded by name through the
studio's adapter path it changes the image while the same seed without it is unchanged."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load

from pipelines.adapters import AdapterSpec, DirectoryAdapterSource
from pipelines.concept import ConceptModel, ConceptRequest
from pipelines.errors import InvalidInput
from pipelines.lora import LoraTrainingConfig, architecture_of, load_training_components, train_lora


@pytest.fixture(scope="module")
def xl_models(tmp_path_factory):
    from pipelines.testing_xl import materialize_tiny_xl_models

    return materialize_tiny_xl_models(tmp_path_factory.mktemp("xl-models"))


def archive_images() -> list[Image.Image]:
    """Four non-square 'archive pieces' with bold stripes (SDXL's size conditioning sees their size)."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(4):
        h, w = 40 + 8 * i, 48
        stripes = (np.indices((h, w)).sum(0) // 6 % 2)[..., None] * np.array([200, 40, 40 + 50 * i])
        out.append(Image.fromarray((stripes + rng.integers(0, 30, (h, w, 3))).clip(0, 255).astype("uint8")))
    return out


@pytest.mark.parametrize("kind, prefix", [("sdxl", "unet."), ("flux", "transformer.")])
def test_lora_trains_saves_and_changes_images_by_name(xl_models, tmp_path, kind, prefix):
    path = xl_models[kind]
    assert architecture_of(path) == kind
    components = load_training_components(path)
    assert components["kind"] == kind
    losses = []
    config = LoraTrainingConfig(steps=8, rank=4, lr=5e-3, resolution=32, batch_size=2, eval_pairs=2, seed=0)
    result = train_lora(components, archive_images(), ["a heritage design"] * 4, config,
                        on_step=lambda step, total, loss: losses.append((step, total, loss)))
    assert [s for s, _, _ in losses] == list(range(1, 9)) and len(result.losses) == 8
    # on a fixed evaluation batch (same noise, same timesteps) the trained adapter does better
    assert result.eval_loss_after < result.eval_loss_before, (result.eval_loss_before, result.eval_loss_after)

    state = load(result.safetensors_bytes)
    assert state and all(k.startswith(prefix) for k in state)
    assert any(".to_q." in k for k in state) and any(".to_out.0." in k for k in state)
    adapters = tmp_path / "adapters"
    adapters.mkdir()
    (adapters / f"house-{kind}.safetensors").write_bytes(result.safetensors_bytes)

    model = ConceptModel.load(path, name=f"tiny-{kind}")
    source = DirectoryAdapterSource(adapters)

    def run(adapters_=()):
        req = ConceptRequest(prompt="a heritage design", n=1, seed=5, steps=2, width=64, height=64,
                             adapters=list(adapters_))
        return np.asarray(model.generate(req, adapter_source=source)[0].image, dtype=np.float32)

    plain = run()
    styled = run([AdapterSpec(f"house-{kind}", 1.0)])
    denoiser = model.pipe.unet if kind == "sdxl" else model.pipe.transformer
    loaded = sum(1 for name, _ in denoiser.named_modules() if name.endswith("lora_A"))
    assert loaded == len(state) // 2  # every trained layer found its place (A and B per layer)
    assert np.abs(styled - plain).mean() > 0.5, np.abs(styled - plain).mean()
    assert np.array_equal(run(), plain)  # the same seed without the adapter is unchanged


def test_training_refuses_a_resolution_the_model_cannot_take(xl_models):
    components = load_training_components(xl_models["flux"])
    components["vae"].register_to_config(block_out_channels=[8, 8, 8, 8])  # FLUX.1's 8x VAE: sides in 16s
    with pytest.raises(InvalidInput, match="resolution 40; this flux model needs a multiple of 16"):
        train_lora(components, archive_images()[:1], ["x"], LoraTrainingConfig(steps=1, resolution=40))


def test_unknown_pipeline_class_is_named(tmp_path):
    (tmp_path / "model_index.json").write_text('{"_class_name": "KandinskyPipeline"}')
    with pytest.raises(InvalidInput, match="KandinskyPipeline; LoRA training supports"):
        load_training_components(tmp_path)
