"""Shared by the governance tests: seeded textured images and a studio CLI environment."""
from __future__ import annotations

from PIL import Image


def textured(seed: int, size: int = 320) -> Image.Image:
    """A seeded fabric-like image (the same one the brand_guard tests use)."""
    from brand_guard_images import textured_image

    return textured_image(seed, size)


def cli_env(settings, **extra) -> dict:
    """Environment variables that point the CLI at the test's studio."""
    env = {
        "STUDIO_DATA_DIR": str(settings.data_dir),
        "STUDIO_MODELS_DIR": str(settings.models_dir),
        "STUDIO_KEY_DIR": str(settings.key_dir),
        "STUDIO_PROFILE": "tiny",
        "STUDIO_DEVICE": "cpu",
    }
    env.update(extra)
    return env


ROLE_OF = {"ana": "designer", "ann": "designer", "chloe": "creative_director", "cleo": "creative_director",
           "root": "admin", "ada": "admin"}


def as_user(studio, name: str):
    """The actor of a session signed in as ``name`` (its account is made on first use, role by name)."""
    if studio.store.user(name) is None:
        studio.add_user(name, ROLE_OF[name], f"{name}-password-1")
    return studio.access.session(name)
