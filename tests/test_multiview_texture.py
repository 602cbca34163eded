"""`--texture multiview`: geometry maps, MV-Adapter port and twin, back-projection, service, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from helpers import validate_glb
from PIL import Image, ImageDraw

from pipelines import render
from pipelines.errors import InvalidInput
from pipelines.mesh.post import unwrap_uv
from pipelines.texture.backproject import atlas_texels, bake_views, project_views, seam_gaps

AXES = {"front": (0, -1, 0), "right": (1, 0, 0), "back": (0, 1, 0), "left": (-1, 0, 0), "top": (0, 0, 1),
        "bottom": (0, 0, -1)}


def in_view_frame(mesh):
    frame = render.ViewFrame.fit(mesh.vertices)
    return frame.points(mesh.vertices), np.asarray(mesh.faces)


# ----------------------------------------------------------------------------- geometry maps
def test_cube_normal_and_position_maps_face_each_camera():
    cube = trimesh.creation.box(extents=(2, 2, 2)).subdivide().subdivide()  # face interiors get flat normals
    points, faces = in_view_frame(cube)
    maps = render.render_geometry_maps(points, faces, render.mv_adapter_views(), 44)
    assert maps.position.shape == (6, 44, 44, 3) and maps.mask.shape == (6, 44, 44)
    for i, name in enumerate(render.MV_VIEW_NAMES):
        axis = np.array(AXES[name], dtype=np.float32)
        centre = maps.normal[i, 18:26, 18:26].reshape(-1, 3)
        assert np.allclose(centre, axis, atol=1e-5), name
        pos = maps.position[i][maps.mask[i]]
        assert pos.min() >= -0.5 - 1e-6 and pos.max() <= 0.5 + 1e-6
        assert np.allclose(pos @ axis, 0.5, atol=1e-5), name  # the camera sees the face nearest to it
        # The cube fills 1/1.1 of the frame's side.
        assert abs(maps.mask[i].mean() - (1 / 1.1) ** 2) < 0.05
    control = maps.control_images()
    assert control.shape == (6, 6, 44, 44) and control.min() >= 0 and control.max() <= 1
    assert np.allclose(control[:, :, 0, 0], 0.5)  # background: position 0 and normal 0, encoded
    # glTF front (+z) is what the first camera sees: its normal there points at the camera (-y in the view frame).
    front = trimesh.creation.box(extents=(1, 1, 0.2))
    front.apply_translation((0, 0, 0.4))
    points, faces = in_view_frame(trimesh.util.concatenate([front, trimesh.creation.box(extents=(0.2, 0.2, 0.2))]))
    m = render.render_geometry_maps(points, faces, render.mv_adapter_views()[:1], 32)
    # bounding-box centre z = 0.2, so the slab's front (z = 0.5) sits at -0.3 along the view frame's y
    assert np.allclose(m.position[0][m.mask[0]][:, 1], -0.3, atol=1e-5)  # the slab, not the small box behind it


def test_geometry_maps_reject_bad_sizes():
    cube = trimesh.creation.box()
    with pytest.raises(InvalidInput, match="between 8 and"):
        render.render_geometry_maps(cube.vertices, cube.faces, render.mv_adapter_views(), 4)


# ----------------------------------------------------------------------------- back-projection
@pytest.fixture(scope="module")
def ellipsoid():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
    mesh.vertices[:, 1] *= 1.5
    vertices, faces, uv = unwrap_uv(mesh, resolution=128)
    frame = render.ViewFrame.fit(vertices)
    points = frame.points(vertices)
    maps = render.render_geometry_maps(points, faces, render.mv_adapter_views(), 64)
    return points, faces, uv, render.stitched_vertex_normals(points, faces), maps


def test_constant_views_give_that_colour_on_every_visible_texel(ellipsoid):
    points, faces, uv, normals, maps = ellipsoid
    colour = np.array([0.2, 0.55, 0.8])
    views = np.broadcast_to(colour, maps.position.shape).copy()
    texels = atlas_texels(points, faces, uv, 128, normals)
    blended, weight = project_views(texels, maps.views, views, maps.depth)
    seen = weight > 0
    assert seen.mean() > 0.97  # six views see nearly all of a convex body
    assert np.abs(blended[seen] - colour).max() < 1e-9
    texture, report = bake_views(points, faces, uv, normals, maps.views, views, maps.depth, 128)
    atlas = np.asarray(texture, dtype=np.float64) / 255
    assert np.abs(atlas - colour).max() <= 1 / 255 + 1e-9  # unseen texels and padding are filled from seen ones
    assert report["texels"] == len(texels.points)


def test_occluded_texels_do_not_take_the_occluding_view():
    slab = trimesh.creation.box(extents=(1.0, 1.0, 0.1))
    slab.apply_translation((0, 0, 0.45))  # in front (glTF +z): hides what is behind it from the front camera
    hidden = trimesh.creation.box(extents=(0.4, 0.4, 0.4))
    mesh = trimesh.util.concatenate([slab, hidden]).subdivide().subdivide()  # flat normals inside each face
    vertices, faces, uv = unwrap_uv(mesh, resolution=128)
    frame = render.ViewFrame.fit(vertices)
    points = frame.points(vertices)
    maps = render.render_geometry_maps(points, faces, render.mv_adapter_views(), 64)
    views = np.zeros(maps.position.shape)
    views[0] = (1.0, 0.0, 0.0)  # only the front camera paints red
    views[1:] = (0.0, 0.0, 1.0)
    normals = render.stitched_vertex_normals(points, faces)
    texels = atlas_texels(points, faces, uv, 128, normals)
    colour, weight = project_views(texels, maps.views, views, maps.depth)
    facing_front = texels.normals @ np.array([0, -1.0, 0]) > 0.99
    # In the view frame (bounding-box centre z = 0.15) the slab's front is at y = -0.35, the box's at -0.05.
    inner = facing_front & (texels.points[:, 1] > -0.2)  # the hidden box's front face
    outer = facing_front & (texels.points[:, 1] < -0.34)  # the slab's front face
    assert inner.sum() > 20 and outer.sum() > 20
    assert np.allclose(colour[outer], (1, 0, 0), atol=0.01)  # side views graze it: cos^4 weights near 0
    assert (colour[inner][:, 0] < 0.01).all()  # never red: unseen (weight 0) or painted by another view


def test_texels_on_both_sides_of_a_uv_seam_match(ellipsoid):
    points, faces, uv, normals, maps = ellipsoid
    smooth = np.clip(maps.position + 0.5, 0, 1)  # colour = position: any seam mismatch shows as a gap
    texture, _ = bake_views(points, faces, uv, normals, maps.views, smooth, maps.depth, 128)
    gaps = seam_gaps(points, faces, uv, texture)
    assert len(gaps) > 20
    assert gaps.mean() < 0.02 and np.percentile(gaps, 95) < 0.05
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    assert seam_gaps(points, faces, uv, noise).mean() > 5 * gaps.mean()  # the check can fail


# ----------------------------------------------------------------------------- MV-Adapter port
def _reference_multiview(q, k, v, side):
    """The published row/column attention written as plain loops (one head)."""
    nv, n, d = q.shape
    out_r, out_c = torch.zeros(4, n, d), torch.zeros(4, n, d)
    grid = lambda x: x.view(nv, side, side, d)  # noqa: E731
    qg, kg, vg = grid(q), grid(k), grid(v)

    def attend(query, keys, values):
        w = torch.softmax(keys @ query / d ** 0.5, 0)
        return w @ values

    for i in range(4):
        for y in range(side):
            for x in range(side):
                keys = torch.cat([kg[j, y] for j in range(4)])
                vals = torch.cat([vg[j, y] for j in range(4)])
                out_r[i, y * side + x] = attend(qg[i, y, x], keys, vals)
    col_views = [0, 2, 4, 5]
    for slot, i in enumerate(col_views):
        for y in range(side):
            for x in range(side):
                xq = side - 1 - x if i == 0 else x
                keys = torch.cat([kg[j, :, side - 1 - xq if j == 0 else xq] for j in col_views])
                vals = torch.cat([vg[j, :, side - 1 - xq if j == 0 else xq] for j in col_views])
                out_c[slot, y * side + x] = attend(qg[i, y, x], keys, vals)
    return torch.stack([(out_r[0] + out_c[0]) / 2, out_r[1], (out_r[2] + out_c[1]) / 2, out_r[3], out_c[2], out_c[3]])


def test_multiview_attention_mixes_rows_of_side_views_and_columns_of_front_back_top_bottom():
    from pipelines.texture.mv_adapter import MultiViewAttnProcessor

    torch.manual_seed(0)
    side, d = 3, 4
    q, k, v = (torch.randn(6, side * side, d) for _ in range(3))
    proc = MultiViewAttnProcessor(d, name="x", use_mv=True, use_ref=False)
    got = proc._multiview(q, k, v, heads=1)
    assert torch.allclose(got, _reference_multiview(q, k, v, side), atol=1e-5)


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory):
    from pipelines.testing import materialize_tiny_models
    from pipelines.twins.mv_adapter import materialize_tiny_mv_adapter

    root = tmp_path_factory.mktemp("mv") / "tiny"
    return materialize_tiny_models(root)["concept"], materialize_tiny_mv_adapter(root)


def test_twin_loads_with_a_strict_key_check(tiny_adapter, tmp_path):
    from safetensors.torch import load_file, save_file

    from pipelines.texture.mv_adapter import WEIGHT_NAME, MultiViewGenerator

    base, adapter = tiny_adapter
    assert sorted(p.name for p in adapter.iterdir() if not p.name.startswith(".")) == [WEIGHT_NAME]
    gen = MultiViewGenerator.load(base, adapter, model_name="huanngzh/mv-adapter", revision="local")
    state = load_file(str(adapter / WEIGHT_NAME))
    assert gen.weights["keys"] == len(state) and gen.weights["encoder_keys"] > 0
    assert any(".attn1.processor.to_q_mv.weight" in k for k in state)
    assert any(".attn1.processor.to_out_ref.0.bias" in k for k in state)
    assert not any(".attn2.processor." in k for k in state)  # cross-attention carries no branches
    key = next(k for k in state if k.endswith("to_k_ref.weight"))
    assert torch.equal(gen.base.unet.state_dict()[key], state[key])  # the file's values, not the init copies
    assert torch.equal(gen.cond_encoder.state_dict()["adapter.conv_in.weight"], state["adapter.conv_in.weight"])
    for broken in ({k: v for k, v in state.items() if k != key}, dict(state, **{"adapter.extra.weight": torch.zeros(1)})):
        bad = tmp_path / ("bad%d" % len(broken))
        bad.mkdir()
        save_file(broken, str(bad / WEIGHT_NAME))
        with pytest.raises(InvalidInput, match="does not match this UNet"):
            MultiViewGenerator.load(base, bad, model_name="x", revision="local")
    wrong_shape = tmp_path / "wrong-shape"
    wrong_shape.mkdir()
    save_file(dict(state, **{key: torch.zeros(3, 3)}), str(wrong_shape / WEIGHT_NAME))
    with pytest.raises(InvalidInput, match="made for another base model"):
        MultiViewGenerator.load(base, wrong_shape, model_name="x", revision="local")


def test_generation_uses_the_concept_image_and_the_geometry(tiny_adapter):
    from pipelines.texture.mv_adapter import MultiViewGenerator

    gen = MultiViewGenerator.load(*tiny_adapter, model_name="huanngzh/mv-adapter", revision="local")
    assert not gen.is_xl
    control = np.random.default_rng(0).random((6, 6, 32, 32)).astype(np.float32)

    def run(image, ctrl):
        return gen(image, ctrl, steps=1, generator=torch.Generator().manual_seed(3))

    red = Image.new("RGB", (40, 30), "red")
    a = run(red, control)
    assert a.shape == (6, 32, 32, 3) and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a, run(red, control))  # seeded
    assert np.abs(a - run(Image.new("RGB", (40, 30), "blue"), control)).max() > 1e-4
    assert np.abs(a - run(red, control * 0.3)).max() > 1e-4
    with pytest.raises(InvalidInput, match="position\\+normal"):
        gen(red, control[:5], steps=1)
    with pytest.raises(InvalidInput, match="multiple of"):
        gen(red, np.zeros((6, 6, 36, 36), np.float32), steps=1)


def test_sdxl_path_on_a_tiny_sdxl(tmp_path):
    """The SDXL-only parts (pooled text, size conditioning, 3 down blocks) on tiny SDXL components built
    the way diffusers' own SDXL tests build them."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from pipelines.testing import tiny_tokenizer
    from pipelines.texture.mv_adapter import MultiViewGenerator
    from pipelines.twins.mv_adapter import build_mv_adapter

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64, 64), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1, 2), projection_class_embeddings_input_dim=80, cross_attention_dim=64,
        norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=[8, 16, 16, 16], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        norm_num_groups=8, sample_size=128)
    cfg = dict(bos_token_id=512, eos_token_id=513, pad_token_id=1, hidden_size=32, intermediate_size=37,
               layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, vocab_size=514, projection_dim=32)
    pipe = StableDiffusionXLPipeline(
        vae=vae, unet=unet, text_encoder=CLIPTextModel(CLIPTextConfig(**cfg)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**cfg)), tokenizer=tiny_tokenizer(),
        tokenizer_2=tiny_tokenizer(),
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"))
    base = tmp_path / "stabilityai" / "stable-diffusion-xl-base-1.0"
    pipe.save_pretrained(base, safe_serialization=True)
    adapter = tmp_path / "huanngzh" / "mv-adapter"
    build_mv_adapter(adapter)  # finds the SDXL base beside it, as in a mirror
    gen = MultiViewGenerator.load(base, adapter, model_name="huanngzh/mv-adapter", revision="local")
    assert gen.is_xl
    assert list(gen.cond_encoder.adapter.body[2].resnets[0].block1.weight.shape[:2]) == [64, 64]
    views = gen(Image.new("RGB", (30, 30), "green"), np.full((6, 6, 64, 64), 0.5, np.float32), steps=1,
                generator=torch.Generator().manual_seed(0))
    assert views.shape == (6, 64, 64, 3) and np.isfinite(views).all()


# ----------------------------------------------------------------------------- service and CLI
def _bag(path: Path) -> Path:
    img = Image.new("RGB", (96, 80), "white")
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((18, 28, 78, 74), 8, fill=(150, 70, 30))
    draw.arc((30, 6, 66, 44), 180, 360, fill=(90, 40, 20), width=5)
    img.save(path)
    return path


def _glb_json(data: bytes) -> dict:
    length = int.from_bytes(data[12:16], "little")
    return json.loads(data[20:20 + length])


def _textured(data: bytes) -> None:
    doc = _glb_json(data)
    pbr = doc["materials"][0]["pbrMetallicRoughness"]
    assert "baseColorTexture" in pbr and doc["images"]


def test_service_paints_multiview_and_records_every_stage(studio, tmp_path):
    from design_studio.errors import InvalidRequest

    image = studio.import_image(str(_bag(tmp_path / "bag.png")), name="bag.png")
    mesh = studio.make_mesh(image.id, backend="lrm", texture="multiview", face_budget=600, texture_size=64,
                            previews=False)
    record = mesh.params["texture"]
    assert record["mode"] == "multiview" and record["model"] == "design-studio/tiny-mv-adapter"
    assert record["base_model"] == "design-studio/tiny-stable-diffusion" and record["revision"] == "local"
    assert record["views"] == list(render.MV_VIEW_NAMES) and record["view_size"] == 32
    assert set(record["timings"]) == {"reference_cutout", "geometry_maps", "multiview", "backproject", "seam_check"}
    assert 0 <= record["seam_gap_mean"] <= record["seam_gap_max"] <= 1
    assert record["reference_mask"] == "threshold"  # the bag on a plain white backdrop
    assert all(mesh.params["timings"][k] >= 0 for k in record["timings"])
    assert 0 < record["texels_seen"] <= 1
    strip = Image.open(studio.store.files.root / record["views_file"])
    assert strip.size == (6 * 32, 32)
    assert studio.provenance(mesh)["params"]["texture"]["model"] == record["model"]
    parts = {c["name"]: c for c in mesh.params["bom"]["components"]}
    assert parts["design-studio/tiny-mv-adapter"]["role"] == "multi-view texturing (MV-Adapter)"
    assert parts["design-studio/tiny-stable-diffusion"]["role"] == "multi-view base model"
    assert parts["studio-rasteriser"]["licence"] == "the studio's own code"
    glb = studio.store.file_path(mesh)
    _textured(glb.read_bytes())
    validate_glb(glb)
    projected = studio.make_mesh(image.id, backend="lrm", face_budget=600, texture_size=64, previews=False)
    assert projected.params["texture"] == {"mode": "project"}
    before = len(studio.store.designs())
    with pytest.raises(InvalidRequest, match="texture 'paint' is not one of project, multiview"):
        studio.make_mesh(image.id, texture="paint")
    assert len(studio.store.designs()) == before


@pytest.mark.slow
def test_cli_multiview_glb_and_bad_texture(tmp_path, models_dir):
    from tests.test_mesh_cli import run_studio

    bag = _bag(tmp_path / "bag.png")
    out = tmp_path / "out" / "bag.glb"
    for fmt in ("glb", "usdz"):  # the detailed path a designer hands on: TripoSG shape, painted all round
        target = out.with_suffix(f".{fmt}")
        proc = run_studio("mesh", str(bag), "--backend", "triposg", "--texture", "multiview", "--format", fmt,
                          "--face-budget", "500", "--texture-size", "64", "--no-previews", "--out", str(target),
                          data_dir=tmp_path / "data", models_dir=models_dir)
        assert proc.returncode == 0, proc.stderr
        assert "texture multiview" in proc.stdout
    _textured(out.read_bytes())
    validate_glb(out)
    from pipelines.mesh.usdz import usdz_compliance

    report = usdz_compliance(out.with_suffix(".usdz").read_bytes())
    assert report["errors"] == [] and report["failed_checks"] == [], report
    bad = run_studio("mesh", str(bag), "--texture", "paint", "--out", str(tmp_path / "o" / "x.glb"),
                     data_dir=tmp_path / "data2", models_dir=models_dir)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["studio: error: --texture 'paint' is not one of project, multiview"]
    assert not (tmp_path / "o").exists()


def test_mesh_panel_offers_the_texture_choice_and_passes_it_on(studio, tmp_path):
    import gradio as gr

    from design_studio.ui.app import build_app

    demo = build_app(studio)
    fn = next(f for f in demo.fns.values() if f.api_name == "make_mesh")
    radio = next(c for c in fn.inputs if getattr(c, "elem_id", None) == "mesh-texture-mode")
    assert [value for _, value in radio.choices] == ["project", "multiview"] and radio.value == "project"
    image = studio.import_image(str(_bag(tmp_path / "bag.png")), name="bag.png")
    args = (image.id, 20, "lrm", "leather", 500, 64, "triangles")
    with pytest.raises(gr.Error, match="texture 'paint' is not one of project, multiview"):
        fn.fn(*args, "paint", request=None, progress=lambda *a, **k: None)
    *_, info, mesh_id = fn.fn(*args, "multiview", request=None, progress=lambda *a, **k: None)
    assert "texture: multiview" in info
    assert studio.store.design(mesh_id).params["texture"]["mode"] == "multiview"


def test_bom_of_a_published_multiview_mesh_names_the_adapter_its_sdxl_base_and_our_rasteriser():
    from design_studio.bom import mesh_bom

    texture = {"mode": "multiview", "model": "huanngzh/mv-adapter", "revision": "main",
               "base_model": "stabilityai/stable-diffusion-xl-base-1.0", "base_revision": "main"}
    bom = mesh_bom("stabilityai/TripoSR", "main", {"backend": "lrm", "mask": "alpha", "texture": texture},
                   profile="standard")
    named = {c["name"]: c for c in bom["components"]}
    adapter, base = named["huanngzh/mv-adapter"], named["stabilityai/stable-diffusion-xl-base-1.0"]
    assert adapter["licence"] == "Apache-2.0" and adapter["kind"] == "weights"
    assert "RAIL++-M" in adapter["lineage"]  # trained on SDXL: its use restrictions come along
    assert base["licence"] == "CreativeML Open RAIL++-M" and base["role"] == "multi-view base model"
    assert named["studio-rasteriser"]["kind"] == "runtime"
    projected = mesh_bom("stabilityai/TripoSR", "main", {"backend": "lrm", "mask": "alpha",
                                                          "texture": {"mode": "project"}}, profile="standard")
    assert not {"huanngzh/mv-adapter", "studio-rasteriser"} & {c["name"] for c in projected["components"]}


def test_standard_profile_loads_mv_adapter_on_its_sdxl_base_through_the_registry(tmp_path):
    """The registry hands the loader the base's folder: the SDXL twin and the MV-Adapter twin of a mirror."""
    from design_studio import catalog
    from design_studio.services import Studio
    from design_studio.settings import Settings
    from pipelines.twins import BUILDERS, MV_ADAPTER_REPO, SDXL_REPO

    mirror = tmp_path / "models"
    for repo in (SDXL_REPO, MV_ADAPTER_REPO):  # the adapter twin is shaped for the SDXL twin beside it
        BUILDERS[repo](mirror / repo, 0)
    studio = Studio(Settings(data_dir=tmp_path / "data", models_dir=mirror, profile="standard", device="cpu"))
    generator = studio.models.get("multiview")
    assert (generator.model_name, generator.base_name) == (MV_ADAPTER_REPO, SDXL_REPO)
    assert generator.is_xl and type(generator.base).__name__ == "StableDiffusionXLPipeline"
    assert catalog.multiview_base("standard", mirror) == (catalog.CATALOGUE["sdxl-base"], mirror / SDXL_REPO)
    with pytest.raises(catalog.InvalidRequest, match="runs on stabilityai/stable-diffusion-xl-base-1.0"):
        catalog.load_entry(catalog.CATALOGUE["mv-adapter"], mirror / MV_ADAPTER_REPO, "cpu")
