"""Shared fixtures for brand_guard tests: seeded textured images and a fast-scrypt vault key."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from brand_guard.vault import KDF_FILE, VaultKey


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


def fast_key(root, passphrase: str = "correct horse") -> VaultKey:
    """Passphrase key with a small scrypt cost so tests stay fast."""
    root.mkdir(parents=True, exist_ok=True)
    return VaultKey.from_passphrase(passphrase, root / KDF_FILE, n=2**12)


@pytest.fixture(name="textured_image")
def _textured_image_fixture():
    """The `textured_image(seed, size, mode)` factory."""
    return textured_image


@pytest.fixture(name="fast_key")
def _fast_key_fixture():
    """The `fast_key(root, passphrase)` factory."""
    return fast_key
