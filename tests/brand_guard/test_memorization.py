"""Near-copy check: a vault image after mild edits is flagged, an unrelated design is not."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from brand_guard.memorization import NearCopyIndex, image_hash_words
from brand_guard.vault import Vault


def _jpeg(im: Image.Image, quality: int = 75) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf)


def _shift(im: Image.Image, delta=(12, -8, 6)) -> Image.Image:
    arr = np.asarray(im.convert("RGB")).astype(np.int16) + np.array(delta, dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


@pytest.fixture
def index(textured_image):
    idx = NearCopyIndex()
    idx.add_many((f"item-{s}", textured_image(s, 256)) for s in range(30))
    return idx


@pytest.mark.parametrize("edit", ["resize", "jpeg75", "colour_shift", "all"])
def test_mild_edits_flagged(index, textured_image, edit):
    original = textured_image(11, 256)
    edits = {
        "resize": lambda im: im.resize((181, 181), Image.BICUBIC),
        "jpeg75": _jpeg,
        "colour_shift": _shift,
        "all": lambda im: _shift(_jpeg(im.resize((200, 200)))),
    }
    result = index.check(edits[edit](original))
    assert result.flagged and result.best_item_id == "item-11", result
    assert result.distance <= result.threshold


def test_unrelated_not_flagged(index, textured_image):
    for seed in range(100, 110):
        result = index.check(textured_image(seed, 256))
        assert not result.flagged, (seed, result)
        assert result.distance > result.threshold


def test_embedding_similarity_flags(textured_image):
    target = textured_image(1, 64)
    embed = lambda im: np.asarray(im.convert("L").resize((8, 8)), dtype=np.float32).ravel() - 128
    idx = NearCopyIndex(threshold=0, embed=embed, similarity_threshold=0.95)
    idx.add("vault-1", target)
    res = idx.check(target)
    assert res.flagged and res.similarity == pytest.approx(1.0, abs=1e-5)
    assert not idx.check(textured_image(50, 64)).flagged


def test_from_vault_reads_through_logged_path(tmp_path, fast_key, textured_image):
    root = tmp_path / "vault"
    vault = Vault.create(root, fast_key(root))
    src = tmp_path / "src"
    src.mkdir()
    for s in range(3):
        textured_image(s, 128).save(src / f"{s}.png")
    vault.add_images(src, collection="AW27", actor="ann")
    idx = NearCopyIndex.from_vault(vault, actor="guard", collection="AW27")
    assert len(idx) == 3
    assert idx.check(_jpeg(textured_image(1, 128))).flagged
    assert vault.access_log()[-1]["purpose"] == "near-copy index"


def test_serialise_round_trip(index, textured_image):
    again = NearCopyIndex.from_bytes(index.to_bytes())
    probe = _jpeg(textured_image(3, 256))
    assert again.check(probe) == index.check(probe)


def test_ten_thousand_items_check_fast(textured_image):
    rng = np.random.default_rng(0)
    idx = NearCopyIndex()
    idx.add_hashes([f"h{i}" for i in range(10_000)], rng.integers(0, 2**63, size=(10_000, 2), dtype=np.uint64))
    probe = textured_image(4, 256)
    idx.add("needle", probe)
    words = image_hash_words(probe)
    start = time.perf_counter()
    for _ in range(20):
        dist = idx.distances(words)
    per_check_ms = (time.perf_counter() - start) / 20 * 1000
    assert dist.argmin() == 10_000
    assert per_check_ms < 50, per_check_ms
    assert idx.check(probe).best_item_id == "needle"
