"""Brand-guard benchmark: watermark survival (JPEG q75, 50 % resize, 10 % crop) over 100 seeded 512² images,
vault encrypt/decrypt throughput, and near-copy check time against 10 000 vault hashes. CPU only."""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brand_guard import provenance  # noqa: E402
from brand_guard.memorization import NearCopyIndex, image_hash_words  # noqa: E402
from brand_guard.vault import Vault, VaultKey, _decrypt, _encrypt  # noqa: E402


def textured(seed: int, size: int = 512) -> Image.Image:
    """Seeded 'fabric-like' content: several oriented sinusoids per channel plus noise."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, size)
    img = np.zeros((size, size, 3))
    for c in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(1, 24, 2)
            img[:, :, c] += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * (fx * x[None, :] + fy * x[:, None]) + rng.uniform(0, 6.3))
    img += rng.normal(0, 0.25, img.shape)
    img = (img - img.min()) / (img.max() - img.min())
    return Image.fromarray((img * 255).astype(np.uint8))


def jpeg75(im: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=75)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def resize50(im: Image.Image) -> Image.Image:
    return im.resize((im.width // 2, im.height // 2), Image.BICUBIC)


def crop10(im: Image.Image) -> Image.Image:
    dx, dy = im.width // 20, im.height // 20  # 5 % off each edge: 10 % of each side removed
    return im.crop((dx, dy, im.width - dx, im.height - dy))


TRANSFORMS = {"jpeg75": jpeg75, "resize50": resize50, "crop10": crop10}


def bench_watermark(n: int) -> dict[str, float]:
    images = [textured(1000 + i) for i in range(n)]
    results = {}
    for label, scales in (("imwatermark default (U channel, scale 36)", [0, 36, 36]), ("studio (Y channel, scale 24)", [24, 0, 0])):
        provenance.WATERMARK_SCALES = scales
        start = time.perf_counter()
        rates = provenance.watermark_survival(images, TRANSFORMS)
        elapsed = time.perf_counter() - start
        psnr = []
        for i, im in enumerate(images[:10]):
            marked, _ = provenance.embed_watermark(im, f"bench-{i:05d}")
            mse = np.mean((np.asarray(im, float) - np.asarray(marked, float)) ** 2)
            psnr.append(10 * np.log10(255**2 / mse))
        print(f"watermark {label}: " + ", ".join(f"{k} {v:.0%}" for k, v in rates.items())
              + f" | PSNR {np.mean(psnr):.1f} dB | {elapsed / n * 1000:.0f} ms/image for embed + 4 detections")
        results = rates
    false_pos = sum(provenance.detect_watermark(textured(5000 + i)) is not None for i in range(n))
    print(f"watermark false positives on {n} unmarked images: {false_pos}")
    return results


def bench_vault(tmp: Path) -> None:
    key = VaultKey.from_passphrase("bench", tmp / "kdf.json", n=2**14)
    data = np.random.default_rng(0).bytes(1 << 20)
    reps = 64
    start = time.perf_counter()
    blobs = [_encrypt(key.key, data, b"x") for _ in range(reps)]
    enc = reps / (time.perf_counter() - start)
    start = time.perf_counter()
    for blob in blobs:
        _decrypt(key.key, blob, b"x", "bench")
    dec = reps / (time.perf_counter() - start)
    print(f"vault AES-256-GCM raw: encrypt {enc:.0f} MB/s, decrypt {dec:.0f} MB/s (1 MiB chunks)")

    src = tmp / "src"
    src.mkdir()
    for i in range(40):
        textured(i).save(src / f"{i}.png")
    total_mb = sum(p.stat().st_size for p in src.iterdir()) / 2**20
    vault = Vault.create(tmp / "vault", key)
    start = time.perf_counter()
    vault.add_images(src, collection="bench", actor="bench")
    add_s = time.perf_counter() - start
    start = time.perf_counter()
    vault.read("bench", actor="bench", purpose="benchmark")
    read_s = time.perf_counter() - start
    print(f"vault end to end (validate, strip, PNG re-encode, encrypt, fsync / decrypt, decode), 40 images 512², "
          f"{total_mb:.1f} MB: add {total_mb / add_s:.1f} MB/s ({add_s / 40 * 1000:.0f} ms/image), "
          f"read {total_mb / read_s:.1f} MB/s ({read_s / 40 * 1000:.0f} ms/image)")


def bench_near_copy() -> None:
    rng = np.random.default_rng(1)
    index = NearCopyIndex()
    index.add_hashes([f"v{i}" for i in range(10_000)], rng.integers(0, 2**63, size=(10_000, 2), dtype=np.uint64))
    probes = [textured(9000 + i, 512) for i in range(20)]
    start = time.perf_counter()
    for p in probes:
        index.check(p)
    full = (time.perf_counter() - start) / len(probes) * 1000
    words = image_hash_words(probes[0])
    start = time.perf_counter()
    for _ in range(200):
        index.distances(words)
    dist = (time.perf_counter() - start) / 200 * 1000
    print(f"near-copy vs 10000 vault hashes: {full:.2f} ms/image with hashing, {dist:.3f} ms/image distance pass alone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_vault(Path(tmp))
    bench_near_copy()
    rates = bench_watermark(args.images)
    print("watermark_survival=" + ",".join(f"{k}:{v:.2f}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
