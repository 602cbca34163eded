"""``studio models pull/status/verify`` against a local mirror in the published layouts: every role of
the profile fetched and locked, safetensors only, TripoSR's pickle converted at pull time, tamper found."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from design_studio import catalog
from design_studio.cli import main
from design_studio.errors import InvalidRequest, NotFound
from design_studio.models_lock import LOCK_NAME, pull, sha256_file, verify

SDXL = "stabilityai/stable-diffusion-xl-base-1.0"


class NotATensor:
    """Pickled into a checkpoint, it must be refused by ``weights_only``."""


def _files(tree, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """The standard profile's repositories under their published file names.

    Depth Anything, the scribble ControlNet and both Shap-E pipelines are tiny random-weight models
    written by ``save_pretrained`` (the names diffusers/transformers publish); SDXL is file names only
    (pull copies bytes, it does not load them); TripoSR is its twin as published (``config.yaml`` +
    ``model.ckpt``, a plain state dict under TripoSR's key names, which the converter checks against
    the network the config describes), plus the pickled ``.bin`` files some repos also publish."""
    from pipelines.testing import materialize_tiny_mesh_models, materialize_tiny_models
    from pipelines.twins import BUILDERS
    from pipelines.twins.mv_adapter import materialize_tiny_multiview

    root = tmp_path_factory.mktemp("mirror")
    tiny = tmp_path_factory.mktemp("tiny")
    two_d, three_d = materialize_tiny_models(tiny), materialize_tiny_mesh_models(tiny)
    for role, repo in (("depth", "depth-anything/Depth-Anything-V2-Small-hf"),
                       ("sketch", "xinsir/controlnet-scribble-sdxl-1.0")):
        shutil.copytree(two_d[role], root / repo, ignore=shutil.ignore_patterns(".tiny-ready"))
    for role, repo in (("shap-e", "openai/shap-e-img2img"), ("shap-e-text", "openai/shap-e")):
        shutil.copytree(three_d[role], root / repo, ignore=shutil.ignore_patterns(".tiny-ready"))
        _files(root / repo, {"prior/diffusion_pytorch_model.bin": "PICKLE"})
    for role, repo in (("triposg", "VAST-AI/TripoSG"), ("triposg-scribble", "VAST-AI/TripoSG-scribble")):
        shutil.copytree(three_d[role], root / repo, ignore=shutil.ignore_patterns(".tiny-ready"))
    # MV-Adapter is one safetensors file at the top (here the tiny twin's bytes: pull copies, it does not load)
    shutil.copytree(materialize_tiny_multiview(tiny)["multiview"], root / "huanngzh/mv-adapter",
                    ignore=shutil.ignore_patterns(".tiny-ready"))
    _files(root / "huanngzh/mv-adapter", {"README.md": "# MV-Adapter", "mvadapter_i2mv_sd21.bin": "PICKLE"})
    _files(root / SDXL, {
        "model_index.json": "{}", "unet/config.json": "{}", "unet/diffusion_pytorch_model.safetensors": "U",
        "unet/diffusion_pytorch_model.bin": "PICKLE", "sd_xl_base_1.0.safetensors": "BIG SINGLE FILE",
        "unet/diffusion_pytorch_model.fp16.safetensors": "F16", "tokenizer/vocab.json": "{}",
        "tokenizer/merges.txt": "#", "text_encoder/model.safetensors": "T", "text_encoder_2/model.safetensors": "T2",
    })
    triposr = root / "stabilityai/TripoSR"
    BUILDERS["stabilityai/TripoSR"](triposr, 0)
    _files(triposr, {"README.md": "# TripoSR"})
    (root / "xinsir/controlnet-scribble-sdxl-1.0/.revision").write_text("0123abcd" * 5)
    return root


def quiet(line):
    pass


def test_pull_fills_and_locks_every_role_of_the_profile(mirror, tmp_path):
    models = tmp_path / "models"
    pull("standard", models, source=mirror, log=quiet)
    lock = json.loads((models / LOCK_NAME).read_text())["models"]
    wanted = {catalog.CATALOGUE[k].repo_id for k in catalog.PROFILES["standard"].values()}
    assert set(catalog.PROFILES["standard"]) == {"concept", "sketch", "depth", "lrm", "shap-e", "shap-e-text",
                                                 "triposg", "triposg-scribble", "multiview"}
    assert set(lock) == wanted and len(wanted) == 9
    assert set(lock["huanngzh/mv-adapter"]["files"]) == {"mvadapter_ig2mv_sdxl.safetensors"}
    assert lock["huanngzh/mv-adapter"]["role"] == "multiview"
    assert {item["role"] for item in lock.values()} == set(catalog.PROFILES["standard"])
    sdxl = lock[SDXL]
    assert set(sdxl["files"]) == {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                                  "tokenizer/vocab.json", "tokenizer/merges.txt", "text_encoder/model.safetensors",
                                  "text_encoder_2/model.safetensors"}
    assert sdxl["revision"].startswith("local-") and sdxl["requested_revision"] == "main"
    assert lock["xinsir/controlnet-scribble-sdxl-1.0"]["revision"] == "0123abcd" * 5
    assert "stable-diffusion-xl-base-1.0" in lock["xinsir/controlnet-scribble-sdxl-1.0"]["lineage"]
    unet = models / SDXL / "unet/diffusion_pytorch_model.safetensors"
    assert sdxl["files"]["unet/diffusion_pytorch_model.safetensors"]["sha256"] == sha256_file(unet)
    for repo in ("openai/shap-e", "openai/shap-e-img2img"):
        assert "shap_e_renderer/diffusion_pytorch_model.safetensors" in lock[repo]["files"]
    # no pickle anywhere under the models folder, and no staging left behind
    assert not [p for p in models.rglob("*") if p.suffix in (".bin", ".ckpt", ".pt", ".pkl")]
    assert not (models / ".staging").exists()
    assert verify(models, log=quiet) == []
    for key in catalog.PROFILES["standard"].values():
        assert catalog.local_path(catalog.CATALOGUE[key], models) is not None


def test_triposr_pickle_is_converted_to_safetensors_with_both_hashes(mirror, tmp_path):
    from brand_guard.egress import check_model_dir

    models = tmp_path / "models"
    pull("standard", models, source=mirror, log=quiet)
    item = json.loads((models / LOCK_NAME).read_text())["models"]["stabilityai/TripoSR"]
    folder = models / "stabilityai/TripoSR"
    assert set(item["files"]) == {"config.yaml", "model.safetensors"}  # README is not a model file
    assert item["converted_from"]["model.ckpt"]["sha256"] == sha256_file(mirror / "stabilityai/TripoSR/model.ckpt")
    assert item["files"]["model.safetensors"]["sha256"] == sha256_file(folder / "model.safetensors")
    assert item["converter"] == catalog.CATALOGUE["triposr"].converter
    original = torch.load(mirror / "stabilityai/TripoSR/model.ckpt", weights_only=True)
    converted = load_file(str(folder / "model.safetensors"))
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)
    assert (folder / "config.yaml").read_text() == (mirror / "stabilityai/TripoSR/config.yaml").read_text()
    check_model_dir(folder)  # guarded mode admits the converted folder: safetensors only


def test_a_checkpoint_holding_objects_is_refused_and_nothing_is_locked(mirror, tmp_path):
    bad = tmp_path / "bad-mirror"
    shutil.copytree(mirror, bad)
    torch.save({"weight": torch.ones(2), "extra": NotATensor()}, bad / "stabilityai/TripoSR/model.ckpt")
    models = tmp_path / "models"
    with pytest.raises(InvalidRequest, match="not a plain tensor checkpoint"):
        pull("standard", models, source=bad, log=quiet)
    lock = json.loads((models / LOCK_NAME).read_text())["models"]
    assert "stabilityai/TripoSR" not in lock
    assert not (models / "stabilityai/TripoSR/model.safetensors").exists()
    assert not [p for p in models.rglob("*.ckpt")]


def test_status_lists_every_role_and_exits_1_until_pulled(mirror, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["models", "status", "--profile", "standard", "--data-dir", str(data)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == list(catalog.PROFILES["standard"])
    assert all("MISSING" in ln and "studio models pull standard" in ln for ln in lines)
    assert main(["models", "pull", "standard", "--source", str(mirror), "--data-dir", str(data)]) == 0
    assert "stabilityai/TripoSR@local-" in capsys.readouterr().out
    assert main(["models", "status", "--profile", "standard", "--data-dir", str(data)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 9 and all("\tok " in ln for ln in lines)


def test_quality_pulls_and_checks_the_sdxl_base_mv_adapter_runs_on(tmp_path):
    """FLUX is the quality concept model, but MV-Adapter runs on SDXL: pull and status list it as its base."""
    needed = catalog.profile_models("quality")
    assert ("multiview", catalog.CATALOGUE["mv-adapter"]) in needed
    assert needed[-1] == ("multiview base", catalog.CATALOGUE["sdxl-base"])
    rows = {s.entry.key: s for s in catalog.status("quality", tmp_path)}
    assert "sdxl-base" in rows and not rows["sdxl-base"].available
    assert f"put its folder at {tmp_path / SDXL}" in rows["sdxl-base"].how_to_get
    with pytest.raises(catalog.ModelMissing, match="runs on stabilityai/stable-diffusion-xl-base-1.0"):
        catalog.multiview_base("quality", tmp_path)


def test_pulled_models_load_in_guarded_mode(mirror, tmp_path):
    """Depth Anything, TripoSR and both Shap-E pipelines from the pulled folders, through their registry loaders."""
    from design_studio.services import Studio
    from design_studio.settings import Settings

    models = tmp_path / "models"
    pull("standard", models, source=mirror, log=quiet)
    studio = Studio(Settings(data_dir=tmp_path / "data", models_dir=models, profile="standard", device="cpu",
                             guarded=True, key_dir=tmp_path / "keys"))
    assert studio.meshes.backend("shap-e").model_name == "openai/shap-e-img2img"
    assert studio.meshes.backend("shap-e", text=True).model_name == "openai/shap-e"
    assert studio.meshes.backend("depth-relief").model_name == "depth-anything/Depth-Anything-V2-Small-hf"
    assert studio.meshes.backend("lrm").model_name == "stabilityai/TripoSR"


def test_verify_finds_changed_missing_and_pickle_files(mirror, tmp_path):
    models = tmp_path / "models"
    pull("standard", models, source=mirror, log=quiet)
    root = models / "xinsir/controlnet-scribble-sdxl-1.0"
    (root / "diffusion_pytorch_model.safetensors").write_text("tampered")
    (root / "config.json").unlink()
    (models / "stabilityai/TripoSR/model.ckpt").write_text("pickle")
    problems = verify(models, log=quiet)
    assert any("diffusion_pytorch_model.safetensors: sha256 differs" in p for p in problems)
    assert any("controlnet-scribble-sdxl-1.0/config.json: missing" in p for p in problems)
    assert any("TripoSR/model.ckpt: pickle-format" in p for p in problems)


def test_bad_pull_requests(mirror, tmp_path):
    with pytest.raises(InvalidRequest, match="profile 'huge'"):
        pull("huge", tmp_path, source=tmp_path)
    with pytest.raises(NotFound, match="has no folder"):
        pull("standard", tmp_path / "models", source=tmp_path)
    with pytest.raises(NotFound, match="no lock file"):
        verify(tmp_path / "models")
    partial = tmp_path / "partial"
    shutil.copytree(mirror, partial)
    (partial / "stabilityai/TripoSR/model.ckpt").unlink()
    with pytest.raises(InvalidRequest, match="lacks model.ckpt"):
        pull("standard", tmp_path / "models2", source=partial, log=quiet)


def test_cli_pull_and_verify(mirror, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["models", "pull", "standard", "--source", str(mirror), "--data-dir", str(data)]) == 0
    assert "xinsir/controlnet-scribble-sdxl-1.0@" + "0123abcd" * 5 in capsys.readouterr().out
    assert main(["models", "verify", "--data-dir", str(data)]) == 0
    (data / "models/depth-anything/Depth-Anything-V2-Small-hf/model.safetensors").write_text("x")
    assert main(["models", "verify", "--data-dir", str(data)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "do not match the lock file" in err[0] and "model.safetensors" in err[0]
