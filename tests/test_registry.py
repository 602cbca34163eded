"""The model registry is the one list: a backend registered in one place shows in ``studio models list``,
``status``, ``studio mesh --list-backends`` and its help, the UI choices, the batch job file and item key;
it loads through ``load_entry``; lineage rules are enforced; ``--resolution`` reaches each backend's grid."""
from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from design_studio import catalog
from design_studio.cli import build_parser, main
from design_studio.errors import InvalidRequest


def toy_twin(root):
    """Twin builder of the toy backend: the tiny LRM network, under the toy role."""
    from pipelines.testing import materialize_tiny_mesh_models

    return {"toy-3d": materialize_tiny_mesh_models(root)["lrm"]}


TOY = catalog.MeshBackend(
    "toy", role="toy-3d", inputs="image", good_for="a test backend registered by one entry",
    models=(
        catalog.ModelEntry(key="tiny-toy", role="toy-3d", repo_id="design-studio/tiny-toy", revision="local",
                           licence=catalog.MADE_HERE, commercial=True, tiny=True, profiles=("tiny",),
                           twin=f"{__name__}:toy_twin", loader="pipelines.mesh.lrm:LRMBackend.load"),
        catalog.ModelEntry(key="toy-real", role="toy-3d", repo_id="example/toy-3d-v1", revision="main",
                           licence="MIT", commercial=True, profiles=("standard",),
                           loader="pipelines.mesh.lrm:LRMBackend.load",
                           lineage=(catalog.Upstream("example/toy-base", "Apache-2.0"),)),
    ),
)


@pytest.fixture
def toy():
    catalog.register(TOY)
    try:
        yield TOY
    finally:
        catalog.unregister("toy")


def bag(path):
    img = Image.new("RGB", (96, 80), "white")
    ImageDraw.Draw(img).rounded_rectangle((20, 20, 76, 70), 10, fill=(150, 80, 30))
    img.save(path)
    return path


def test_one_entry_reaches_every_listing(toy, tmp_path, capsys, models_dir):
    data = ["--data-dir", str(tmp_path / "data")]
    # studio models list: both profiles, with licence and lineage
    assert main(["models", "list", *data]) == 0
    out = capsys.readouterr().out
    assert "tiny\ttoy-3d\tdesign-studio/tiny-toy@local" in out
    line = next(ln for ln in out.splitlines() if "example/toy-3d-v1" in ln)
    assert line.startswith("standard\ttoy-3d") and "inherits Apache-2.0 from example/toy-base" in line
    # studio models status: the new role is listed, missing until pulled, so the exit is 1
    assert main(["models", "status", "--profile", "standard", *data]) == 1
    assert any(ln.startswith("toy-3d\texample/toy-3d-v1") and "MISSING" in ln
               for ln in capsys.readouterr().out.splitlines())
    # studio mesh --list-backends and the --backend help
    assert main(["mesh", "--list-backends", "--profile", "standard", *data]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("toy\tMIT + inherits Apache-2.0")
    mesh_parser = build_parser()._subparsers._group_actions[0].choices["mesh"]
    backend_help = next(a.help for a in mesh_parser._actions if "--backend" in a.option_strings)
    assert backend_help.startswith("depth-relief | lrm | shap-e | triposg | triposg-scribble | toy")
    # the UI's backend choices come from the studio
    from design_studio.services import Studio
    from design_studio.settings import Settings

    studio = Studio(Settings(data_dir=tmp_path / "data", models_dir=models_dir, profile="tiny", device="cpu",
                             key_dir=tmp_path / "keys"))
    assert [b.name for b, _ in studio.mesh_backends()][-1] == "toy"
    # the batch job file accepts it and its item key names the toy model, not the depth model
    from design_studio.batch.jobfile import JobLimits, check_row
    from design_studio.batch.runner import BatchRunner

    row = check_row(2, {"prompt": "a bag", "seed": "1", "mesh": "toy"}, JobLimits(), tmp_path)
    assert row.mesh == "toy"
    runner = BatchRunner(studio, tmp_path / "job.jsonl", tmp_path / "out")
    assert runner.model_identity(row)["mesh"] == ["toy", "design-studio/tiny-toy", "local"]
    other = check_row(2, {"prompt": "a bag", "seed": "1", "mesh": "lrm"}, JobLimits(), tmp_path)
    assert runner.model_identity(other)["mesh"] == ["lrm", "design-studio/tiny-lrm", "local"]
    assert runner.item_key(row) != runner.item_key(other)
    # and it runs: the registry's loader, a textured mesh at the asked grid
    image = studio.import_image(bag(tmp_path / "bag.png"), name="bag.png")
    mesh = studio.make_mesh(image.id, backend="toy", resolution=24, face_budget=400, texture_size=64,
                            previews=False)
    assert mesh.model == "design-studio/tiny-toy" and mesh.params["grid"] == 24


def test_unregistered_backend_is_gone_everywhere(tmp_path, capsys):
    catalog.register(TOY)
    catalog.unregister("toy")
    assert "toy" not in catalog.MESH_BACKENDS and "toy-3d" not in catalog.PROFILES["standard"]
    assert "tiny-toy" not in catalog.CATALOGUE
    from design_studio.batch.jobfile import JobLimits, check_row

    problem = check_row(2, {"prompt": "a bag", "seed": "1", "mesh": "toy"}, JobLimits(), tmp_path)
    assert "column mesh: 'toy' is not a mesh backend" in str(problem)


def test_batch_key_follows_the_pinned_revision(tmp_path):
    """A pulled model's commit (from the lock file) is part of the item key of rows that use it."""
    models = tmp_path / "models"
    models.mkdir()
    ident = catalog.model_identity("standard", mesh="lrm", models_dir=models)
    assert ident["mesh"] == ["lrm", "stabilityai/TripoSR", "main"]
    (models / "models.lock.json").write_text(json.dumps({"version": 1, "models": {
        "stabilityai/TripoSR": {"revision": "abc123"}}}))
    ident = catalog.model_identity("standard", mesh="lrm", sketch=True, models_dir=models)
    assert ident["mesh"] == ["lrm", "stabilityai/TripoSR", "abc123"]
    assert ident["sketch"][0] == "xinsir/controlnet-scribble-sdxl-1.0"
    assert "sketch" not in catalog.model_identity("quality", sketch=True)  # FLUX has no sketch model


def test_registration_checks_lineage_and_profiles():
    # a fine-tune inherits its base's licence: a non-commercial base cannot make a commercial model
    segformer = catalog.ModelEntry(
        key="segformer-b2-clothes", role="segmentation", repo_id="mattmdjaga/segformer_b2_clothes",
        revision="main", licence="MIT", commercial=True, profiles=("standard",),
        lineage=(catalog.Upstream("nvidia/mit-b2", "NVIDIA Source Code License (non-commercial)",
                                  commercial=False),))
    with pytest.raises(ValueError, match="inherits the non-commercial licence of nvidia/mit-b2"):
        catalog.register(segformer)
    with pytest.raises(ValueError, match="already uses 'sdxl-base' for the role 'concept'"):
        catalog.register(catalog.ModelEntry(key="other-sdxl", role="concept", repo_id="x/y", revision="main",
                                            licence="MIT", commercial=True, profiles=("standard",)))
    with pytest.raises(ValueError, match="only commercially usable models may be a profile default"):
        catalog.register(catalog.ModelEntry(key="nc", role="upscale", repo_id="x/nc", revision="main",
                                            licence="CC-BY-NC-4.0", commercial=False, profiles=("quality",)))
    with pytest.raises(ValueError, match="'convert' .* and 'converter' go together"):
        catalog.register(catalog.ModelEntry(key="pk", role="upscale", repo_id="x/pk", revision="main",
                                            licence="MIT", commercial=True, convert=("model.ckpt",)))
    assert "segformer-b2-clothes" not in catalog.CATALOGUE and "nc" not in catalog.CATALOGUE
    assert "segmentation" not in catalog.roles() and "hunyuan3d" not in catalog.roles()


def test_every_entry_is_runnable_and_licensed():
    """No placeholders: each entry either loads through a real loader or joins another pipeline, and
    names its licence; every non-tiny profile default is commercially usable, lineage included."""
    for entry in catalog.CATALOGUE.values():
        assert entry.licence
        if entry.loader:
            assert callable(catalog.resolve(entry.loader)), entry.key
        else:
            assert entry.role == "sketch", entry.key
        if entry.converter:
            assert callable(catalog.resolve(entry.converter))
        assert all(u.commercial for u in entry.inherited)
    sketch = catalog.CATALOGUE["controlnet-scribble-sdxl"]
    assert "CreativeML Open RAIL++-M" in sketch.licence_line  # inherited from SDXL
    assert "facebook/dino-vitb16" in catalog.CATALOGUE["triposr"].lineage_line


def test_load_entry_errors_name_the_model():
    with pytest.raises(InvalidRequest, match="xinsir/controlnet-scribble-sdxl-1.0 is not loaded on its own"):
        catalog.load_entry(catalog.CATALOGUE["controlnet-scribble-sdxl"], "/nowhere", "cpu")
    with pytest.raises(ValueError, match="is not 'module:attribute'"):
        catalog.resolve("pipelines.mesh.lrm.LRMBackend")


@pytest.mark.parametrize("backend, field", [("lrm", "grid"), ("shap-e", "grid"), ("depth-relief", "resolution")])
def test_resolution_sets_the_grid_of_each_backend(studio, tmp_path, backend, field):
    image = studio.import_image(bag(tmp_path / "bag.png"), name="bag.png")
    mesh = studio.make_mesh(image.id, backend=backend, resolution=20, face_budget=400, texture_size=64,
                            previews=False)
    assert mesh.params[field] == 20
    with pytest.raises(InvalidRequest, match="resolution must be a whole number"):
        studio.make_mesh(image.id, backend=backend, resolution=2.5)


def test_cli_resolution_reaches_the_lrm_field_grid(tmp_path, models_dir, monkeypatch, capsys):
    from design_studio.services import Studio
    from design_studio.settings import Settings

    monkeypatch.setenv("STUDIO_MODELS_DIR", str(models_dir))
    data = tmp_path / "data"
    out = tmp_path / "bag.glb"
    assert main(["mesh", str(bag(tmp_path / "bag.png")), "--backend", "lrm", "--resolution", "22",
                 "--face-budget", "400", "--texture-size", "64", "--no-previews", "--out", str(out),
                 "--profile", "tiny", "--device", "cpu", "--data-dir", str(data)]) == 0
    studio = Studio(Settings(data_dir=data, models_dir=models_dir, profile="tiny", device="cpu"))
    (mesh,) = studio.store.designs(kind="mesh")
    assert mesh.params["grid"] == 22 and out.exists()
