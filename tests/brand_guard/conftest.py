"""Shared fixtures for brand_guard tests: seeded textured images and a fast-scrypt vault key."""

from __future__ import annotations

import pytest

from brand_guard.vault import KDF_FILE, VaultKey
from brand_guard_images import textured_image  # noqa: F401  (tests import it from here)


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
