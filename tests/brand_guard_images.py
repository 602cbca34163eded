"""Seeded test images shared by the brand_guard and governance tests."""
from __future__ import annotations

import numpy as np
from PIL import Image


def textured_image(seed: int, size: int = 320, mode: str = "RGB") -> Image.Image:
    """A seeded image with sinusoidal structure plus noise (something like fabric, unlike flat colour)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, size)
    base = np.zeros((size, size, 3))
    for c in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(1, 12, 2)
            base[:, :, c] += np.sin(2 * np.pi * (fx * x[None, :] + fy * x[:, None]) + rng.uniform(0, 6.3))
    base += rng.normal(0, 0.3, base.shape)
    base = (base - base.min()) / (base.max() - base.min())
    return Image.fromarray((base * 255).astype(np.uint8)).convert(mode)
