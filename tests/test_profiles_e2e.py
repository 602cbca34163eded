"""The standard and quality profiles end to end, on twins of what they ship, pulled as a user pulls them.

One mirror of random-weight twins in the published layouts (``pipelines.twins.build``) is pulled per
profile with the real ``studio models pull PROFILE --source MIRROR``; everything after that goes through
the studio as a designer drives it: status, text -> images, sketch -> images, variations and refine,
LoRA adapters by name, every 3D backend of the profile in guarded mode (a valid textured GLB at the
asked size), a batch file, and the Gradio page. Sizes and steps are tiny so both profiles run in CI.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image, ImageDraw

from helpers import validate_glb

from design_studio import catalog
from design_studio.cli import main
from pipelines.concept import read_png_metadata

PROFILES = ("standard", "quality")
SIZE = 64  # a multiple of 16 (FLUX packs 2x2 latent patches)


@pytest.fixture(scope="session")
def mirror(tmp_path_factory) -> Path:
    """Twins of every catalogued model of both profiles, as a local mirror of the Hub."""
    from pipelines.twins import build

    root = tmp_path_factory.mktemp("twin-mirror")
    build(root, "all")
    return root


@pytest.fixture(scope="session")
def empty_keys(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module", params=PROFILES)
def profile(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pulled(profile, mirror, tmp_path_factory, empty_keys) -> Path:
    """A data dir whose models folder was filled by ``studio models pull PROFILE --source MIRROR``."""
    data = tmp_path_factory.mktemp(f"data-{profile}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_KEY_DIR", str(empty_keys))
        mp.delenv("STUDIO_MODELS_DIR", raising=False)
        assert main(["models", "pull", profile, "--source", str(mirror), "--data-dir", str(data)]) == 0
    return data


@pytest.fixture
def cli_env(monkeypatch, pulled, profile, empty_keys):
    """The CLI on the pulled data dir, guarded, on the CPU."""
    monkeypatch.setenv("STUDIO_KEY_DIR", str(empty_keys))
    monkeypatch.setenv("STUDIO_GUARDED", "1")
    monkeypatch.delenv("STUDIO_MODELS_DIR", raising=False)
    return ["--profile", profile, "--data-dir", str(pulled), "--device", "cpu"]


@pytest.fixture(scope="module")
def studio(profile, pulled, tmp_path_factory):
    """One guarded studio per profile on the pulled models (models load once for the module)."""
    from design_studio.services import Studio
    from design_studio.settings import Settings

    data = tmp_path_factory.mktemp(f"studio-{profile}")
    return Studio(Settings(data_dir=data, models_dir=pulled / "models", profile=profile, device="cpu",
                           guarded=True, key_dir=tmp_path_factory.mktemp("studio-keys")))


def pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def bag_image() -> Image.Image:
    """A cognac bag with a handle on a white studio backdrop."""
    img = Image.new("RGB", (160, 128), "white")
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((30, 44, 130, 118), 14, fill=(154, 78, 28))
    draw.line((40, 80, 120, 80), fill=(90, 40, 15), width=2)
    draw.arc((55, 8, 105, 70), 180, 360, fill=(110, 50, 20), width=7)
    return img


def sketch_image() -> Image.Image:
    """Dark pencil lines of a bag on white paper."""
    img = Image.new("RGB", (128, 128), "white")
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((20, 50, 108, 110), 10, outline="black", width=3)
    draw.arc((40, 14, 88, 70), 180, 360, fill="black", width=3)
    return img


def small(**extra) -> dict:
    return {"n": 1, "steps": 1, "width": SIZE, "height": SIZE, **extra}


# ---------------------------------------------------------------------------- models
def test_status_lists_every_role_missing_before_and_ok_after_the_pull(cli_env, profile, pulled, tmp_path, capsys):
    roles = [entry.role for _, entry in catalog.profile_models(profile)]  # with the base models adapters run on
    assert len(roles) >= (6 if profile == "standard" else 5)
    fresh = ["--profile", profile, "--data-dir", str(tmp_path / "fresh")]
    assert main(["models", "status", *fresh]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == roles and all("MISSING" in ln for ln in lines)
    assert main(["models", "status", *cli_env]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == roles
    assert all("\tok " in ln and str(pulled / "models") in ln for ln in lines)
    assert main(["models", "verify", *cli_env]) == 0
    lock = json.loads((pulled / "models" / "models.lock.json").read_text())["models"]
    assert {item["role"] for item in lock.values()} == {role for role, _ in catalog.profile_models(profile)}


def test_a_hub_pull_while_offline_says_how_to_pull_and_writes_nothing(tmp_path, empty_keys, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_KEY_DIR", str(empty_keys))
    monkeypatch.delenv("STUDIO_MODELS_DIR", raising=False)
    assert main(["models", "pull", "standard", "--data-dir", str(tmp_path / "data")]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "offline" in err[0] and "STUDIO_GUARDED=0" in err[0] and "--source" in err[0]
    assert not (tmp_path / "data" / "models").exists()


# ---------------------------------------------------------------------------- images
def test_text_to_images_from_the_cli(cli_env, profile, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["generate", "a cognac tote", "-n", "2", "--seed", "3", "--steps", "1", "--width", str(SIZE),
            "--height", str(SIZE * 2), "--out", str(out), *cli_env]
    assert main(args) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 2 and len(capsys.readouterr().out.strip().splitlines()) == 2
    meta = read_png_metadata(pngs[0])
    assert meta["model"] == catalog.entry_for(profile, "concept").repo_id and meta["mode"] == "text"
    assert {Image.open(p).size for p in pngs} == {(SIZE, SIZE * 2)}
    assert np.abs(pixels(pngs[0]) - pixels(pngs[1])).mean() > 0.5  # two seeds, two images


def test_sketch_to_images(studio, profile, tmp_path):
    sketch = tmp_path / "sketch.png"
    sketch_image().save(sketch)
    # FLUX img2img needs two steps for a sketch: with one the drawing would be all noise (refused)
    design = studio.generate_concepts("a bag from my sketch", seed=4, sketch=str(sketch), **small(steps=2))[0]
    p = design.params
    assert p["mode"] == "sketch" and p["sketch_file"]
    if profile == "standard":  # the SDXL scribble ControlNet conditions it
        assert p["sketch_backend"] == "controlnet" and any(
            c.get("name") == catalog.entry_for("standard", "sketch").repo_id for c in p["bom"]["components"])
        plain = studio.generate_concepts("a bag from my sketch", seed=4, **small(steps=2))[0]
        assert np.abs(pixels(studio.store.file_path(design)) - pixels(studio.store.file_path(plain))).mean() > 0.5
    else:  # no commercially usable FLUX ControlNet: img2img from the lines
        assert "sketch" not in catalog.PROFILES["quality"]
        assert p["sketch_backend"] == "img2img" and p["img2img_strength"] > 0
    with Image.open(studio.store.file_path(design)) as img:
        assert img.size == (SIZE, SIZE)


def test_variations_and_refine_record_their_parent(studio, profile):
    # two steps: a variation keeps them and denoises strength x steps of them
    parent = studio.generate_concepts("a quilted shoulder bag", seed=7, **dict(small(), steps=2))[0]
    variations = studio.vary_design(parent.id, n=2, seed=11)
    assert len(variations) == 2
    assert all(v.parent_id == parent.id and v.params["relation"] == "variation" for v in variations)
    assert all(v.params["mode"] == "img2img" for v in variations)
    refined = studio.refine_design(parent.id, "a quilted shoulder bag in navy")
    assert refined.parent_id == parent.id and refined.params["relation"] == "refine"
    assert refined.seed == parent.seed and refined.prompt.endswith("navy")
    for design in [refined, *variations]:
        with Image.open(studio.store.file_path(design)) as img:
            assert img.size == (SIZE, SIZE)


def write_lora(profile: str, models_dir: Path, folder: Path, name: str, seed: int = 1) -> Path:
    """A random LoRA in the file format diffusers writes for the profile's denoiser: ``unet.``-prefixed
    for SDXL, ``transformer.``-prefixed for FLUX (peft layer names, safetensors)."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    repo = models_dir / catalog.entry_for(profile, "concept").repo_id
    if profile == "standard":
        from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
        from diffusers.utils import convert_state_dict_to_diffusers

        net = UNet2DConditionModel.from_pretrained(repo, subfolder="unet")
        targets = ["to_q", "to_k", "to_v", "to_out.0"]
    else:
        from diffusers import FluxPipeline, FluxTransformer2DModel

        net = FluxTransformer2DModel.from_pretrained(repo, subfolder="transformer")
        targets = ["to_q", "to_k", "to_v", "to_out.0"]
    net.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, param in net.named_parameters():
            if "lora_" in pname:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    layers = get_peft_model_state_dict(net)
    folder.mkdir(parents=True, exist_ok=True)
    if profile == "standard":
        StableDiffusionXLPipeline.save_lora_weights(folder, unet_lora_layers=convert_state_dict_to_diffusers(layers),
                                                    weight_name=f"{name}.safetensors", safe_serialization=True)
    else:
        FluxPipeline.save_lora_weights(folder, transformer_lora_layers=layers, weight_name=f"{name}.safetensors",
                                       safe_serialization=True)
    return folder / f"{name}.safetensors"


def test_an_adapter_by_name_changes_the_image(studio, profile):
    from safetensors import safe_open

    path = write_lora(profile, studio.settings.resolved_models_dir, studio.settings.adapters_dir, "house-style")
    prefix = "unet." if profile == "standard" else "transformer."
    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith(prefix) for k in keys)
    assert "house-style" in studio.adapter_names()
    plain = studio.generate_concepts("a tote", seed=5, **small())[0]
    styled = studio.generate_concepts("a tote", seed=5, adapters=["house-style:1.0"], **small())[0]
    off_again = studio.generate_concepts("a tote", seed=5, **small())[0]
    assert np.abs(pixels(studio.store.file_path(styled)) - pixels(studio.store.file_path(plain))).mean() > 0.5
    assert np.abs(pixels(studio.store.file_path(off_again)) - pixels(studio.store.file_path(plain))).max() <= 2
    assert [a["name"] for a in styled.params["adapters"]] == ["house-style"]


def test_private_lora_trained_on_the_vault_is_used_by_name(studio, profile, tmp_path, monkeypatch):
    """The house archive goes into the vault; a LoRA is trained on it for the profile's own architecture
    (SDXL's two encoders and time ids; FLUX's packed latents and flow-matching loss) and stays in the
    vault; generating with it by name changes the image."""
    from brand_guard_images import textured_image

    monkeypatch.setenv("STUDIO_VAULT_PASSPHRASE", "house archive 1867")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for seed in range(4):
        textured_image(seed, 64).save(incoming / f"look-{seed}.png")
    studio.open_vault(create=True).add_images(sorted(incoming.iterdir()), "heritage", "archivist")
    result = studio.train_lora("heritage", f"heritage-{profile}", steps=6, rank=4, lr=1e-2, resolution=32, seed=0,
                               actor=None)  # solo mode: the person at the machine
    assert len(result.losses) == 6 and result.eval_loss_after != result.eval_loss_before
    assert f"heritage-{profile}" in studio.open_vault().blobs(kind="adapter")
    plain = studio.generate_concepts("a tote", seed=9, **small())[0]
    styled = studio.generate_concepts("a tote", seed=9, adapters=[f"heritage-{profile}:1.0"], **small())[0]
    assert np.abs(pixels(studio.store.file_path(styled)) - pixels(studio.store.file_path(plain))).mean() > 0.1
    assert [a["name"] for a in styled.params["adapters"]] == [f"heritage-{profile}"]


# ---------------------------------------------------------------------------- 3D
def backend_names(profile: str) -> list[str]:
    return [b.name for b, _ in catalog.backends_for(profile)]


def test_every_backend_is_listed_for_both_profiles():
    for profile in PROFILES:
        assert {"depth-relief", "lrm", "shap-e", "triposg", "triposg-scribble"} <= set(backend_names(profile))


@pytest.mark.parametrize("backend", ["depth-relief", "lrm", "shap-e", "triposg"])
def test_every_3d_backend_makes_a_valid_textured_glb_in_guarded_mode(backend, cli_env, profile, pulled, empty_keys,
                                                                     tmp_path, capsys):
    assert backend in backend_names(profile)
    image = tmp_path / "bag.png"
    bag_image().save(image)
    out = tmp_path / f"{backend}.glb"
    args = ["mesh", str(image), "--backend", backend, "--resolution", "24", "--face-budget", "600",
            "--texture-size", "64", "--size-cm", "32", "--seed", "1", "--no-previews", "--out", str(out), *cli_env]
    assert main(args) == 0, capsys.readouterr().err
    line = capsys.readouterr().out.strip().splitlines()[0]
    assert f"\t{backend}\t" in line and "32 cm" in line
    from design_studio.services import Studio
    from design_studio.settings import Settings

    record = Studio(Settings(data_dir=pulled, profile=profile, device="cpu", key_dir=empty_keys)).store.design(
        int(line.split("\t")[1].split()[1]))
    assert record.model == catalog.entry_for(profile, catalog.mesh_backend(backend).role).repo_id
    # --resolution sets the grid this backend works on (relief columns, or the field grid)
    assert record.params[catalog.mesh_backend(backend).resolution_option] == 24
    mesh = trimesh.load(out, force="mesh")
    assert 0 < len(mesh.faces) <= 600
    assert abs(float(mesh.extents.max()) - 0.32) < 1e-4
    texture = mesh.visual.material.baseColorTexture
    assert texture.size == (64, 64) and np.asarray(texture).std() > 0
    validate_glb(out)


def test_sketch_and_prompt_to_3d_with_triposg_scribble(cli_env, profile, tmp_path, capsys):
    sketch = tmp_path / "sketch.png"
    sketch_image().save(sketch)
    out = tmp_path / "scribble.glb"
    args = ["mesh", str(sketch), "--backend", "triposg-scribble", "--prompt", "a structured top-handle bag",
            "--resolution", "24", "--face-budget", "600", "--texture-size", "64", "--no-previews", "--out", str(out),
            *cli_env]
    assert main(args) == 0, capsys.readouterr().err
    mesh = trimesh.load(out, force="mesh")
    assert 0 < len(mesh.faces) <= 600
    validate_glb(out)


def test_triposg_painted_all_round_by_mv_adapter_on_the_sdxl_twin(studio, profile, tmp_path, monkeypatch):
    """The detailed path on the pulled profile: TripoSG shape, MV-Adapter views on the SDXL base (small
    views and two steps for a CPU), baked into a GLB and exported as an ARKit-compliant USDZ."""
    from pipelines.mesh.usdz import usdz_compliance

    monkeypatch.setitem(catalog.MESH_DEFAULTS, profile, dict(catalog.MESH_DEFAULTS[profile], multiview_size=32,
                                                             multiview_steps=2))
    bag_image().save(tmp_path / "bag.png")
    image = studio.import_image(str(tmp_path / "bag.png"), name="bag.png", actor=None)
    mesh = studio.make_mesh(image.id, backend="triposg", texture="multiview", resolution=24, face_budget=600,
                            texture_size=64, previews=False, actor=None)
    record = mesh.params["texture"]
    assert record["mode"] == "multiview" and record["model"] == "huanngzh/mv-adapter"
    assert record["base_model"] == "stabilityai/stable-diffusion-xl-base-1.0"
    validate_glb(studio.store.file_path(mesh))
    files = studio.export_mesh(mesh.id, "usdz")
    report = usdz_compliance(next(data for name, data in files.items() if name.endswith(".usdz")))
    assert report["errors"] == [] and report["failed_checks"] == [], report


def test_text_to_3d_with_shap_e(cli_env, profile, tmp_path, capsys):
    out = tmp_path / "text.glb"
    args = ["mesh", "--prompt", "a soft tote", "--backend", "shap-e", "--resolution", "24", "--face-budget", "600",
            "--texture-size", "64", "--no-previews", "--out", str(out), *cli_env]
    assert main(args) == 0, capsys.readouterr().err
    mesh = trimesh.load(out, force="mesh")
    assert 0 < len(mesh.faces) <= 600
    validate_glb(out)


# ---------------------------------------------------------------------------- batch and page
def test_a_batch_file_runs_on_the_profile(studio, profile, tmp_path, monkeypatch):
    from design_studio.batch import manifest

    # a job file has no 3D size columns: the profile's 3D defaults, made small for a CPU
    small_3d = dict(catalog.MESH_DEFAULTS[profile], grid=24, face_budget=600, texture_size=64,
                    turntable_frames=4, preview_size=64)
    monkeypatch.setitem(catalog.MESH_DEFAULTS, profile, small_3d)

    job = tmp_path / "job.jsonl"
    rows = [dict(prompt="cognac top-handle bag", seed=10, n=1, steps=1, size=f"{SIZE}x{SIZE}", mesh="lrm"),
            dict(prompt="black loafer", seed=20, n=2, steps=1, size=f"{SIZE}x{SIZE}")]
    job.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = studio.run_batch(job, tmp_path / "out")
    assert (summary.done_now, summary.images, summary.meshes, summary.failed) == (2, 3, 1, [])
    states = manifest.read_records(tmp_path / "out" / "manifest.jsonl")
    assert sorted((r["line"], r["state"]) for r in states) == [(1, "done"), (2, "done")]
    bag = next(r for r in states if r["line"] == 1)
    mesh = trimesh.load(tmp_path / "out" / bag["meshes"][0]["file"], force="mesh")
    assert 0 < len(mesh.faces) <= 600 and mesh.visual.material.baseColorTexture.size == (64, 64)
    # the item key of an lrm row holds TripoSR's commit as the pull pinned it
    lock = json.loads((studio.settings.resolved_models_dir / "models.lock.json").read_text())["models"]
    identity = catalog.model_identity(profile, mesh="lrm", models_dir=studio.settings.resolved_models_dir)
    assert identity["mesh"] == ["lrm", "stabilityai/TripoSR", lock["stabilityai/TripoSR"]["revision"]]
    made = [tmp_path / "out" / img["file"] for r in states for img in r["images"]]
    assert len(made) == 3 and all(read_png_metadata(p)["model"] == catalog.entry_for(profile, "concept").repo_id
                                  for p in made)


def test_the_page_starts_on_the_profile(studio, profile):
    from design_studio.ui.app import build_app, model_banner

    banner = model_banner(studio)
    assert banner.startswith(f"Profile **{profile}**")
    for role, key in catalog.PROFILES[profile].items():
        assert f"{role}: {catalog.CATALOGUE[key].repo_id}" in banner
    demo = build_app(studio)
    blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert blocks["model-banner"].value == banner
    offered = [value for _, value in blocks["mesh-backend"].choices]
    assert offered == backend_names(profile) and blocks["mesh-backend"].value == catalog.MESH_DEFAULTS[profile]["backend"]


def test_the_page_is_served_on_loopback_for_the_profile(profile, pulled, tmp_path, empty_keys):
    import socket
    import urllib.request

    from design_studio.app import start
    from design_studio.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(data_dir=tmp_path / "data", models_dir=pulled / "models", profile=profile, device="cpu",
                        guarded=True, key_dir=empty_keys, port=port)
    _, demo = start(settings, prevent_thread_lock=True, quiet=True)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.status == 200 and "Design Studio" in page.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=30) as config:
            text = config.read().decode()
        assert f"Profile **{profile}**" in text and "Models missing" not in text
        assert catalog.entry_for(profile, "lrm").repo_id in text
    finally:
        demo.close()
