"""The crop-proof mark: each transform a leaked copy goes through still reads the design's id; unmarked
pictures read nothing; the change stays invisible (PSNR); the code corrects noisy bits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from brand_guard import watermark as wm


def photo_like(seed: int, size: tuple[int, int]) -> Image.Image:
    """A seeded picture with soft shapes, an object and fine texture, at a product-shot scale."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32) + rng.uniform(120, 220, 3)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.1, 0.4) * min(w, h)
        inside = ((x - cx) ** 2 + (y - cy) ** 2) < r * r
        img[inside] = img[inside] * 0.4 + rng.uniform(20, 240, 3) * 0.6
    img += 12 * np.sin(x / rng.uniform(2, 5))[..., None] * np.sin(y / rng.uniform(2, 5))[..., None]
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str, **options) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def crop10(im):
    w, h = im.size
    return im.crop((w // 10, h // 10, w - w // 10, h - h // 10))


TRANSFORMS = {
    "crop 10 % per side": crop10,
    "resize 50 %": lambda im: im.resize((im.width // 2, im.height // 2), Image.BICUBIC),
    "JPEG q60": lambda im: encoded(im, "JPEG", quality=60),
    "PNG to WEBP": lambda im: encoded(im, "WEBP"),
    "screenshot (80 % bilinear)": lambda im: encoded(im.resize((im.width * 4 // 5, im.height * 4 // 5), Image.BILINEAR), "PNG"),
    "brightness +10 %": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "brightness -10 %": lambda im: ImageEnhance.Brightness(im).enhance(0.9),
    "crop + JPEG q60": lambda im: encoded(crop10(im), "JPEG", quality=60),
    "resize 50 % + JPEG q60": lambda im: encoded(im.resize((im.width // 2, im.height // 2), Image.BICUBIC), "JPEG", quality=60),
}


@pytest.fixture(scope="module")
def marked():
    pictures = [photo_like(seed, size) for seed, size in ((1, (512, 512)), (2, (768, 576)), (3, (640, 896)))]
    return [(wm.embed(p, f"uid-{i}"), wm.payload_for(f"uid-{i}"), p) for i, p in enumerate(pictures)]


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_mark_survives(marked, name):
    for image, payload, _ in marked:
        assert wm.detect(TRANSFORMS[name](image)) == payload, name


def test_unmarked_pictures_read_nothing(marked):
    assert all(wm.detect(original) is None for _, _, original in marked)
    assert all(wm.detect(photo_like(100 + s, (512, 512))) is None for s in range(4))


def test_change_is_invisible(marked):
    assert all(wm.psnr(original, image) >= 40.0 for image, _, original in marked)


def test_other_uid_other_payload_and_alpha_kept():
    picture = photo_like(7, (384, 384)).convert("RGBA")
    picture.putalpha(200)
    out = wm.embed(picture, "a")
    assert out.mode == "RGBA" and np.asarray(out)[..., 3].min() == 200
    assert wm.detect(out.convert("RGB")) == wm.payload_for("a") != wm.payload_for("b")


def test_too_small_is_refused():
    with pytest.raises(ValueError, match="smaller than"):
        wm.embed(Image.new("RGB", (200, 600)), "x")


def test_code_corrects_noisy_bits():
    rng = np.random.default_rng(0)
    clean = 2 * wm._coded_bits("0badf00d") - 1
    noisy = clean + rng.normal(0, 0.7, clean.shape)
    assert np.sum(np.sign(noisy) != clean) > 3  # several raw bits are wrong...
    assert wm._decode(noisy) == "0badf00d"  # ...and the code still recovers the id
    assert wm._decode(rng.normal(0, 1, clean.shape)) is None
