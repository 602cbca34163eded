"""``studio models pull/verify`` against a local mirror folder: safetensors only, a lock file, tamper found."""
from __future__ import annotations

import json

import pytest

from design_studio import catalog
from design_studio.cli import main
from design_studio.errors import InvalidRequest, NotFound
from design_studio.models_lock import LOCK_NAME, pull, sha256_file, verify


def make_mirror(root):
    """A mirror holding each repo of the standard profile: configs, safetensors, and pickles to be skipped."""
    for key in catalog.PROFILES["standard"].values():
        entry = catalog.CATALOGUE[key]
        tree = root / entry.repo_id
        if entry.role == "concept":
            files = {"model_index.json": "{}", "unet/config.json": "{}", "unet/diffusion_pytorch_model.safetensors": "U",
                     "unet/diffusion_pytorch_model.bin": "PICKLE", "sd_xl_base_1.0.safetensors": "BIG SINGLE FILE",
                     "unet/diffusion_pytorch_model.fp16.safetensors": "F16", "tokenizer/vocab.json": "{}",
                     "tokenizer/merges.txt": "#", "text_encoder/model.safetensors": "T"}
        else:
            files = {"config.json": "{}", "diffusion_pytorch_model.safetensors": "C", "model.safetensors": "M",
                     "pytorch_model.bin": "PICKLE"}
        for rel, text in files.items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_text(text)
    (root / "xinsir/controlnet-scribble-sdxl-1.0/.revision").write_text("0123abcd" * 5)
    return root


def test_pull_copies_safetensors_only_and_writes_the_lock(tmp_path):
    mirror, models = make_mirror(tmp_path / "mirror"), tmp_path / "models"
    pull("standard", models, source=mirror, log=lambda line: None)
    lock = json.loads((models / LOCK_NAME).read_text())["models"]
    assert set(lock) == {catalog.CATALOGUE[k].repo_id for k in catalog.PROFILES["standard"].values()}
    sdxl = lock["stabilityai/stable-diffusion-xl-base-1.0"]
    assert set(sdxl["files"]) == {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                                  "tokenizer/vocab.json", "tokenizer/merges.txt", "text_encoder/model.safetensors"}
    assert sdxl["revision"].startswith("local-") and sdxl["requested_revision"] == "main"
    assert lock["xinsir/controlnet-scribble-sdxl-1.0"]["revision"] == "0123abcd" * 5
    unet = models / "stabilityai/stable-diffusion-xl-base-1.0/unet/diffusion_pytorch_model.safetensors"
    assert sdxl["files"]["unet/diffusion_pytorch_model.safetensors"]["sha256"] == sha256_file(unet)
    assert not list(models.rglob("*.bin"))
    assert verify(models, log=lambda line: None) == []
    # now the catalogue finds the weights on this machine
    assert catalog.local_path(catalog.CATALOGUE["controlnet-scribble-sdxl"], models) is not None


def test_verify_finds_changed_missing_and_pickle_files(tmp_path):
    mirror, models = make_mirror(tmp_path / "mirror"), tmp_path / "models"
    pull("standard", models, source=mirror, log=lambda line: None)
    root = models / "xinsir/controlnet-scribble-sdxl-1.0"
    (root / "diffusion_pytorch_model.safetensors").write_text("tampered")
    (root / "config.json").unlink()
    (root / "extra.ckpt").write_text("pickle")
    problems = verify(models, log=lambda line: None)
    assert any("diffusion_pytorch_model.safetensors: sha256 differs" in p for p in problems)
    assert any("config.json: missing" in p for p in problems)
    assert any("extra.ckpt: pickle-format" in p for p in problems)


def test_bad_pull_requests(tmp_path):
    with pytest.raises(InvalidRequest, match="profile 'huge'"):
        pull("huge", tmp_path, source=tmp_path)
    with pytest.raises(NotFound, match="has no folder"):
        pull("standard", tmp_path / "models", source=tmp_path)
    with pytest.raises(NotFound, match="no lock file"):
        verify(tmp_path / "models")


def test_cli_pull_and_verify(tmp_path, capsys):
    mirror, data = make_mirror(tmp_path / "mirror"), tmp_path / "data"
    assert main(["models", "pull", "standard", "--source", str(mirror), "--data-dir", str(data)]) == 0
    assert "xinsir/controlnet-scribble-sdxl-1.0@" + "0123abcd" * 5 in capsys.readouterr().out
    assert main(["models", "verify", "--data-dir", str(data)]) == 0
    (data / "models/depth-anything/Depth-Anything-V2-Small-hf/model.safetensors").write_text("x")
    assert main(["models", "verify", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "do not match the lock file" in err[0] and "model.safetensors" in err[0]
