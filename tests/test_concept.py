"""Text -> concept images: metadata, seeds, reproducibility (tiny model, real diffusers pipeline)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from pipelines.concept import read_png_metadata


def pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_four_pngs_carry_their_parameters(studio):
    designs = studio.generate_concepts("a cognac leather top-handle bag", n=4, seed=11, negative_prompt="logo")
    assert [d.seed for d in designs] == [11, 12, 13, 14]
    assert len({d.file for d in designs}) == 4
    for d in designs:
        meta = read_png_metadata(studio.store.file_path(d))
        assert meta["prompt"] == "a cognac leather top-handle bag"
        assert meta["negative_prompt"] == "logo"
        assert meta["seed"] == d.seed
        assert meta["model"] == "design-studio/tiny-stable-diffusion"
        assert meta["steps"] == studio.defaults["steps"]
        assert (meta["width"], meta["height"]) == (64, 64)
        with Image.open(studio.store.file_path(d)) as img:
            assert img.size == (64, 64)
            assert img.text["studio:prompt"] == "a cognac leather top-handle bag"


def test_same_seed_same_pixels_different_seeds_differ(studio):
    a = studio.generate_concepts("silk scarf, geometric print", n=2, seed=5)
    b = studio.generate_concepts("silk scarf, geometric print", n=2, seed=5)
    assert np.array_equal(pixels(studio.store.file_path(a[0])), pixels(studio.store.file_path(b[0])))
    assert np.array_equal(pixels(studio.store.file_path(a[1])), pixels(studio.store.file_path(b[1])))
    assert np.abs(pixels(studio.store.file_path(a[0])) - pixels(studio.store.file_path(a[1]))).mean() > 1.0


def test_each_image_reproduces_alone_from_its_seed(studio):
    batch = studio.generate_concepts("a black calfskin loafer", n=3, seed=100)
    alone = studio.generate_concepts("a black calfskin loafer", n=1, seed=batch[2].seed)
    diff = np.abs(pixels(studio.store.file_path(batch[2])) - pixels(studio.store.file_path(alone[0])))
    assert diff.max() <= 2, f"seed {batch[2].seed} alone differs from its batch image by {diff.max()}"


def test_model_is_loaded_once_and_reused(studio):
    studio.generate_concepts("a watch", n=1, seed=1)
    model = studio.models.get("concept")
    studio.generate_concepts("a ring", n=1, seed=2)
    assert studio.models.get("concept") is model
    assert model.pipe.unet is studio.models.get("concept").pipe.unet


def test_progress_reports_each_step(studio):
    seen = []
    studio.generate_concepts("a belt", n=1, seed=3, steps=3, on_progress=lambda f, m: seen.append((f, m)))
    assert [round(f, 3) for f, _ in seen] == [round(1 / 3, 3), round(2 / 3, 3), 1.0]
    assert seen[-1][1] == "denoising step 3 of 3"
