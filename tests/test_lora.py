"""Private LoRA training: vault images decrypted in memory only, loss falls, the adapter changes outputs,
and no plaintext copy of a training image exists anywhere afterwards."""
from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import pytest
from gov_helpers import textured, as_user
from PIL import Image

from design_studio.errors import InvalidRequest

PASS = "house archive 1867"


def pixel_digest(image: Image.Image) -> str:
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def image_files_matching(root: Path, digests: set[str], since: float | None = None) -> list[Path]:
    """Every PNG/JPEG/WEBP under root (by content, whatever the name) whose pixels equal a training image."""
    found = []
    for path in root.rglob("*") if root.exists() else []:
        try:
            if not path.is_file() or (since is not None and path.stat().st_mtime < since):
                continue
            with path.open("rb") as fh:
                head = fh.read(12)
            if not (head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8") or head[8:12] == b"WEBP"):
                continue
            with Image.open(path) as im:
                if pixel_digest(im) in digests:
                    found.append(path)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # files of other processes that vanish, are not images or are oversized test inputs
    return found


def test_train_lora_from_the_vault_leaves_no_plaintext_and_changes_outputs(studio, tmp_path, monkeypatch):
    import torch
    from diffusers import StableDiffusionPipeline

    monkeypatch.setenv("STUDIO_VAULT_PASSPHRASE", PASS)
    images = [textured(seed, 48) for seed in range(4)]
    digests = {pixel_digest(im) for im in images}
    vault = studio.open_vault(create=True)
    buf_paths = []
    for i, im in enumerate(images):  # handed to the vault from memory-like files outside every studio dir
        p = tmp_path / "incoming" / f"look-{i}.png"
        p.parent.mkdir(exist_ok=True)
        im.save(p)
        buf_paths.append(p)
    vault.add_images(buf_paths, "heritage", "archivist")
    for p in buf_paths:
        p.unlink()  # the archive now lives only in the vault
    started = time.time() - 1

    with pytest.raises(InvalidRequest, match="no images"):
        studio.train_lora("unknown", "x", steps=1, actor=as_user(studio, "ana"))
    losses_seen = []
    result = studio.train_lora("heritage", "heritage-v1", steps=14, rank=4, lr=5e-3, resolution=32, seed=0,
                               actor=as_user(studio, "ana"), on_progress=lambda f, m: losses_seen.append(m))
    assert len(result.losses) == 14 and len(losses_seen) == 14 and "loss" in losses_seen[0]
    # on a fixed batch (same noise and timesteps) the loss after training is lower than before
    assert result.eval_loss_after < result.eval_loss_before * 0.98, (result.eval_loss_before, result.eval_loss_after)
    assert sum(result.losses[-4:]) / 4 < sum(result.losses[:4]) / 4

    # the adapter is in the vault, encrypted, and the read for training was logged with its purpose
    assert studio.open_vault().blobs(kind="adapter")["heritage-v1"]["size"] == len(result.safetensors_bytes)
    assert result.safetensors_bytes not in b"".join(p.read_bytes() for p in studio.settings.resolved_vault_dir.rglob("*.enc"))
    assert any(e["purpose"] == "lora-training" and len(e["items"]) == 4 for e in studio.open_vault().access_log())

    # loading it by name into the tiny pipeline changes the image for the same seed
    state = studio.adapter_source().load("heritage-v1").state_dict
    pipe = StableDiffusionPipeline.from_pretrained(studio.settings.models_dir / "tiny" / "tiny-concept",
                                                   local_files_only=True, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)

    def run():
        return pipe("a heritage design", num_inference_steps=2, height=32, width=32, output_type="np",
                    generator=torch.Generator().manual_seed(5)).images

    before = run()
    pipe.load_lora_weights(state, adapter_name="heritage-v1")
    after = run()
    assert abs(after - before).max() > 1e-3

    # and the studio generates with it by name: recorded in the design and its signed provenance
    plain = studio.generate_concepts("a heritage design", n=1, seed=5, actor=as_user(studio, "ana"))[0]
    styled = studio.generate_concepts("a heritage design", n=1, seed=5, adapters=["heritage-v1:1.0"], actor=as_user(studio, "ana"))[0]
    import hashlib as _h

    assert styled.params["adapters"] == [{"name": "heritage-v1", "weight": 1.0,
                                          "sha256": _h.sha256(result.safetensors_bytes).hexdigest()}]
    assert studio.store.file_path(plain).read_bytes() != studio.store.file_path(styled).read_bytes()
    verdict = studio.verify_file(studio.store.file_path(styled))
    assert verdict.status == "valid" and verdict.record["adapters"] == ["heritage-v1:1"]
    assert any(e["purpose"] == "generation" for e in studio.open_vault().access_log())

    # no plaintext training image anywhere: data dir, vault dir, the temp dir (files written since training began)
    assert image_files_matching(studio.settings.data_dir, digests) == []
    assert image_files_matching(studio.settings.resolved_vault_dir, digests) == []
    assert image_files_matching(Path(tempfile.gettempdir()), digests, since=started) == []
    # and the scan itself can find such a file
    leak = studio.settings.data_dir / "scratch" / "leak.bin"
    leak.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(leak, format="PNG")
    assert image_files_matching(studio.settings.data_dir, digests) == [leak]
