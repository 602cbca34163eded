"""Exports designers ask for: USDZ for AR Quick Look (ARKit checker), MP4 turntables, quad remesh
for CAD/CLO handoff; the exporters dict; the studio and CLI paths."""
from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from gov_helpers import cli_env
from PIL import Image

from pipelines import render
from pipelines.errors import InvalidInput
from pipelines.mesh.export import EXPORTERS, export, load_obj_files
from pipelines.mesh.post import apply_material, bake_texture, unwrap_uv, vertex_colour_fn

GL_OK, GL_WHY = render.gl_available()
needs_gl = pytest.mark.skipif(not GL_OK, reason=f"no offscreen OpenGL here (CI installs Mesa EGL): {GL_WHY}")


def textured_ellipsoid(material: str = "leather", size_m: float = 0.25, subdivisions: int = 3):
    """A closed ellipsoid whose texture runs red -> blue along x (so colour transfer can be checked)."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    sphere.apply_scale([1.0, 0.6, 0.4])
    colours = np.zeros((len(sphere.vertices), 3))
    t = (sphere.vertices[:, 0] - sphere.vertices[:, 0].min()) / np.ptp(sphere.vertices[:, 0])
    colours[:, 0], colours[:, 2] = 1 - t, t
    vertices, faces, uv = unwrap_uv(sphere, resolution=128)
    texture = bake_texture(vertices, faces, uv, vertex_colour_fn(sphere.vertices, colours), 128)
    mesh = apply_material(vertices, faces, uv, texture, material)
    mesh.apply_scale(size_m / mesh.extents.max())
    return mesh


def read_mp4(data: bytes) -> tuple[dict, list[np.ndarray]]:
    import imageio_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        path.write_bytes(data)
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]
    return meta, frames


# ---------------------------------------------------------------- USDZ
def test_usdz_passes_the_arkit_checker_in_metres_y_up_with_the_pbr_preset():
    from pipelines.mesh.usdz import load_usdz_summary, usdz_compliance

    mesh = textured_ellipsoid("metal")
    data = export(mesh, "usdz", "bag")["bag.usdz"]
    report = usdz_compliance(data)
    assert report["errors"] == [] and report["failed_checks"] == []
    summary = load_usdz_summary(data)
    assert summary["up_axis"] == "Y" and summary["meters_per_unit"] == 1.0 and summary["default_prim"] == "/Model"
    assert summary["files"][0] == "bag.usdc" and "bag_baseColor.png" in summary["files"]
    (geom,) = summary["meshes"]
    assert geom["faces"] == len(mesh.faces) and geom["st"]
    assert np.allclose(geom["extent"], mesh.extents, atol=1e-6)  # metres, same size as the GLB
    assert geom["material"]["UsdPreviewSurface.metallic"] == pytest.approx(1.0)
    assert geom["material"]["UsdPreviewSurface.roughness"] == pytest.approx(0.25)
    assert geom["material"]["UsdUVTexture.file"].path.endswith("bag_baseColor.png")


def test_a_broken_usdz_fails_the_checker():
    from pipelines.mesh.usdz import usdz_compliance

    data = export(textured_ellipsoid(), "usdz")["model.usdz"]
    # USDZ members must be stored uncompressed and 64-byte aligned; a re-zipped (deflated) copy is not.
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    report = usdz_compliance(buffer.getvalue())
    assert report["errors"] or report["failed_checks"]


def test_exporters_dict_and_bad_format():
    mesh = textured_ellipsoid()
    assert set(EXPORTERS) == {"glb", "obj", "usdz"}
    files = export(mesh, "obj", "tote")
    assert set(files) == {"tote.obj", "tote.mtl", "tote.png"}
    assert load_obj_files(files).visual.uv is not None
    with pytest.raises(InvalidInput, match="'fbx' is not one of glb, obj, usdz"):
        export(mesh, "fbx")
    with pytest.raises(InvalidInput, match="empty mesh"):
        export(trimesh.Trimesh(), "usdz")


# ---------------------------------------------------------------- MP4
def test_mp4_decodes_with_every_frame_and_even_size():
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(np.full((51, 64, 3), (i * 40, 100, 255 - i * 40), np.uint8)) for i in range(6)]
    frames[0] = Image.fromarray(rng.integers(0, 255, (51, 64, 3), dtype=np.uint8))
    meta, decoded = read_mp4(render.mp4_bytes(frames, fps=12))
    assert tuple(meta["size"]) == (64, 52)  # odd height padded for yuv420p
    assert meta["fps"] == pytest.approx(12)
    assert len(decoded) == 6
    # Lossy, but each flat frame keeps its colour.
    for i in (2, 5):
        assert np.abs(decoded[i][:51].reshape(-1, 3).mean(0) - (i * 40, 100, 255 - i * 40)).max() < 12
    with pytest.raises(InvalidInput, match="frame rate"):
        render.mp4_bytes(frames, fps=0)


@needs_gl
def test_turntable_mp4_of_a_mesh():
    frames = render.render_turntable(textured_ellipsoid(), frames=8, size=64)
    meta, decoded = read_mp4(render.mp4_bytes(frames))
    assert tuple(meta["size"]) == (64, 64) and len(decoded) == 8
    assert len({f.tobytes() for f in decoded}) == 8  # the object turns


# ---------------------------------------------------------------- quads
def test_quad_remesh_is_mostly_quads_same_size_and_textured():
    from pipelines.mesh.remesh import quad_obj_from_mesh, quad_remesh, surface_colour_fn
    from pipelines.mesh.usdz import load_usdz_summary, usdz_compliance

    mesh = textured_ellipsoid(subdivisions=4)
    quads = quad_remesh(mesh, target_faces=600, texture_size=128, material="leather")
    report = quads.report
    assert report["quad_share"] > 0.8 and report["quads"] == len(quads.quads) > 300
    assert report["faces_in"] == len(mesh.faces)
    out = quads.triangulated()
    assert len(out.faces) == 2 * len(quads.quads) + len(quads.triangles)
    assert np.allclose(out.extents.max(), mesh.extents.max(), rtol=1e-6)  # the asked size is kept
    assert np.allclose(out.extents, mesh.extents, rtol=0.05)
    assert trimesh.Trimesh(out.vertices, out.faces, process=True).is_watertight
    # The texture came across: red on the -x end, blue on the +x end, close to the original's colours.
    original, baked = surface_colour_fn(mesh), surface_colour_fn(out)
    probe = out.vertices[::5]
    assert np.abs(original(probe) - baked(probe)).mean() < 0.06
    left, right = baked(out.vertices[out.vertices[:, 0] < -0.1]), baked(out.vertices[out.vertices[:, 0] > 0.1])
    assert left[:, 0].mean() > 0.8 > right[:, 0].mean() and right[:, 2].mean() > 0.8

    files = quad_obj_from_mesh(out, len(quads.quads), "handoff")
    text = files["handoff.obj"].decode()
    sides = [len(line.split()) - 1 for line in text.splitlines() if line.startswith("f ")]
    assert sides.count(4) == len(quads.quads) and sides.count(3) == len(quads.triangles)
    reloaded = load_obj_files(files)  # trimesh triangulates quads on load; texture and UVs survive
    assert len(reloaded.faces) == len(out.faces) and reloaded.visual.uv is not None

    from pipelines.mesh.usdz import export_usdz  # the plain exporter writes triangles; quads need the count

    usdz = export_usdz(out, "handoff", quads=len(quads.quads))
    assert usdz_compliance(usdz)["failed_checks"] == []
    assert load_usdz_summary(usdz)["meshes"][0]["quads"] == len(quads.quads)


def test_quad_remesh_refuses_bad_input():
    from pipelines.mesh.remesh import quad_remesh, quads_from_triangles

    with pytest.raises(InvalidInput, match="quad face target"):
        quad_remesh(textured_ellipsoid(), target_faces=3, texture_size=64, material="leather")
    with pytest.raises(InvalidInput, match="textured"):
        quad_remesh(trimesh.creation.box(), target_faces=100, texture_size=64, material="leather")
    with pytest.raises(InvalidInput, match="not quad pairs"):
        quads_from_triangles(trimesh.creation.box().faces, 3)


# ---------------------------------------------------------------- studio and CLI
def test_studio_quads_mp4_and_usdz(studio):
    from pipelines.mesh.usdz import load_usdz_summary, usdz_compliance

    image = studio.generate_concepts("a round leather pouch", n=1, seed=4)[0]
    mesh = studio.make_mesh(image.id, size_cm=20, topology="quads", previews=GL_OK)
    topo = mesh.params["topology"]
    assert topo["kind"] == "quads" and topo["quads"] > 0 and topo["quad_share"] > 0.6
    assert mesh.params["faces"] == 2 * topo["quads"] + topo["triangles"]
    assert "pynanoinstantmeshes" in {c["name"] for c in mesh.params["bom"]["components"]}

    files = studio.export_mesh(mesh.id, "usdz")
    (name, data), = files.items()
    assert name == f"design-{mesh.id}.usdz"
    assert usdz_compliance(data)["failed_checks"] == [] and usdz_compliance(data)["errors"] == []
    summary = load_usdz_summary(data)
    assert summary["meshes"][0]["quads"] == topo["quads"]
    assert max(summary["meshes"][0]["extent"]) == pytest.approx(0.20, abs=1e-4)
    record = summary["provenance"]
    assert record["design"] == mesh.id and "usd-core" in {c["name"] for c in record["bom"]["components"]}

    obj = studio.export_mesh(mesh.id, "obj")[f"design-{mesh.id}.obj"].decode()
    assert sum(line.startswith("f ") and len(line.split()) == 5 for line in obj.splitlines()) == topo["quads"]

    if GL_OK:
        previews = mesh.params["previews"]
        path = studio.preview_path(mesh, "turntable_mp4")
        assert path.suffix == ".mp4" and path.is_file()
        assert path.name == hashlib.sha256(path.read_bytes()).hexdigest() + ".mp4"  # content-addressed
        meta, decoded = read_mp4(path.read_bytes())
        side = studio.mesh_defaults["preview_size"]
        assert len(decoded) == previews["frames"] and tuple(meta["size"]) == (side, side)
        assert {"pyrender", "ffmpeg"} <= {c["name"] for c in mesh.params["bom"]["components"]}

    with pytest.raises(Exception, match="topology 'hexes' is not one of triangles, quads"):
        studio.make_mesh(image.id, topology="hexes")


def test_cli_usdz_and_quads(studio, settings, monkeypatch, capsys, tmp_path):
    from design_studio.cli import main
    from pipelines.mesh.usdz import usdz_compliance

    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    source = tmp_path / "pouch.png"
    picture = Image.new("RGB", (96, 96), "white")
    picture.paste((150, 40, 30), (20, 20, 76, 80))
    picture.save(source)
    out = tmp_path / "pouch.usdz"
    assert main(["mesh", str(source), "--out", str(out), "--format", "usdz", "--topology", "quads",
                 "--no-previews"]) == 0
    printed = capsys.readouterr().out
    assert "quads\t" in printed and usdz_compliance(out.read_bytes())["failed_checks"] == []
    assert main(["mesh", str(source), "--out", str(tmp_path / "x.glb"), "--format", "usdz"]) == 2
    assert "must end in .usdz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["mesh", str(source), "--out", str(out), "--topology", "hexes"])
