"""LoRA adapters by name: they change the images, several at once, recorded, and any source plugs in."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from design_studio.errors import InvalidRequest
from pipelines.adapters import AdapterWeights, DirectoryAdapterSource, parse_adapters
from pipelines.concept import read_png_metadata
from pipelines.testing import tiny_lora


def pixels(studio, design) -> np.ndarray:
    with Image.open(studio.store.file_path(design)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


@pytest.fixture
def adapters(studio):
    tiny_lora(studio.settings.adapters_dir, "house-style", seed=1)
    tiny_lora(studio.settings.adapters_dir, "gold-hardware", seed=2)
    return studio.settings.adapters_dir


def test_adapter_changes_the_image_and_is_recorded(studio, adapters):
    plain = studio.generate_concepts("a tote", n=1, seed=5)[0]
    styled = studio.generate_concepts("a tote", n=1, seed=5, adapters=["house-style:0.9"])[0]
    both = studio.generate_concepts("a tote", n=1, seed=5, adapters=["house-style:0.9", "gold-hardware:0.5"])[0]
    off_again = studio.generate_concepts("a tote", n=1, seed=5)[0]
    assert np.abs(pixels(studio, styled) - pixels(studio, plain)).mean() > 1.0
    assert np.abs(pixels(studio, both) - pixels(studio, styled)).mean() > 0.5
    assert np.abs(pixels(studio, off_again) - pixels(studio, plain)).max() <= 2, "adapters must switch off"
    meta = read_png_metadata(studio.store.file_path(both))
    assert [(a["name"], a["weight"]) for a in meta["adapters"]] == [("house-style", 0.9), ("gold-hardware", 0.5)]
    assert all(len(a["sha256"]) == 64 for a in meta["adapters"])
    assert both.params["adapters"] == meta["adapters"] and plain.params["adapters"] == []
    assert studio.adapter_names() == ["gold-hardware", "house-style"]


def test_adapter_weight_scales_the_effect(studio, adapters):
    plain = pixels(studio, studio.generate_concepts("a tote", n=1, seed=5)[0])
    weak = pixels(studio, studio.generate_concepts("a tote", n=1, seed=5, adapters=[("house-style", 0.2)])[0])
    strong = pixels(studio, studio.generate_concepts("a tote", n=1, seed=5, adapters=[("house-style", 1.0)])[0])
    assert np.abs(weak - plain).mean() < np.abs(strong - plain).mean()


def test_bad_adapter_requests(studio, adapters):
    (adapters / "broken.safetensors").write_bytes(b"not safetensors")
    for spec, message in [("house-style:5", "weight must be between"), ("house-style,house-style", "given twice"),
                          ("../etc:1", "use letters"), ("broken", "not a readable safetensors")]:
        with pytest.raises(InvalidRequest, match=message):
            studio.generate_concepts("a tote", n=1, seed=5, adapters=[spec])
    assert studio.store.designs() == []


class VaultLikeSource:
    """Anything with names() and load(name) plugs in (the brand-guard vault will)."""

    def __init__(self, folder):
        self.inner, self.reads = DirectoryAdapterSource(folder), []

    def names(self):
        return ["vault-style"]

    def load(self, name) -> AdapterWeights:
        self.reads.append(name)
        w = self.inner.load("house-style")
        return AdapterWeights(name, w.sha256, w.state_dict)


def test_another_adapter_source_plugs_in(studio, adapters):
    source = VaultLikeSource(adapters)
    studio.use_adapter_source(source)
    design = studio.generate_concepts("a tote", n=1, seed=5, adapters=["vault-style"])[0]
    assert source.reads and design.params["adapters"][0]["name"] == "vault-style"
    with pytest.raises(InvalidRequest, match="does not provide"):
        studio.use_adapter_source(object())


def test_parse_adapters_forms():
    specs = parse_adapters(["a:0.5, b", ("c", 2), {"name": "d", "weight": -1}])
    assert [(s.name, s.weight) for s in specs] == [("a", 0.5), ("b", 1.0), ("c", 2.0), ("d", -1.0)]
