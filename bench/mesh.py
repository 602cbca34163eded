"""Image -> 3D speed: seconds and share per stage for each backend (tiny twins, CPU), and the post-processing of a 200k-face mesh.

Run: ``python -m bench.mesh`` (or ``python bench/mesh.py``) from the repository root. Numbers are
measured side by side in one run; the tiny twins show where time goes, not full-size speed.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ["background", "reconstruction", "cleanup", "decimate", "uv", "bake", "export", "render"]


def table(rows: dict[str, dict[str, float]]) -> None:
    print(f"{'stage':<15}" + "".join(f"{name:>22}" for name in rows))
    for stage in STAGES + ["total"]:
        cells = []
        for timings in rows.values():
            total = sum(timings.get(s, 0.0) for s in STAGES)
            value = total if stage == "total" else timings.get(stage, 0.0)
            cells.append(f"{value:8.3f} s {100 * value / total:6.1f} %")
        print(f"{stage:<15}" + "".join(f"{c:>22}" for c in cells))


def backends(models_dir: Path, repeats: int = 2) -> dict[str, dict[str, float]]:
    from PIL import Image, ImageDraw

    from design_studio.services import Studio
    from design_studio.settings import Settings
    from pipelines import render
    from pipelines.mesh import MeshOptions, export_glb

    studio = Studio(Settings(data_dir=Path(tempfile.mkdtemp()) / "data", models_dir=models_dir, profile="tiny", device="cpu"))
    img = Image.new("RGB", (256, 200), "white")
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((50, 70, 206, 180), 18, fill=(154, 78, 28))
    draw.arc((90, 10, 166, 110), 180, 360, fill=(110, 50, 20), width=9)
    gl_ok, why = render.gl_available()
    if not gl_ok:
        print(f"render stage skipped: {why}")
    rows = {}
    for name in ("depth-relief", "lrm", "shap-e"):
        backend = studio.meshes.backend(name)  # loading is not timed: the studio keeps models loaded
        options = MeshOptions(resolution=96, face_budget=5000, texture_size=512, grid=48, seed=1)
        best: dict[str, float] = {}
        for _ in range(repeats):  # the first run pays one-off warm-ups; keep the best of each stage
            result = backend.reconstruct(img, options)
            timings = dict(result.params["timings"])
            timings["cleanup"] = timings.get("cleanup", 0) + timings.pop("orient", 0.0)
            start = time.perf_counter()
            export_glb(result.mesh)
            timings["export"] = time.perf_counter() - start
            if gl_ok:
                start = time.perf_counter()
                render.render_thumbnail(result.mesh, 256)
                render.render_turntable(result.mesh, 12, 192)
                timings["render"] = time.perf_counter() - start
            best = {k: min(v, best.get(k, v)) for k, v in timings.items()}
        rows[f"{name} ({result.params['faces']}f)"] = best
    return rows


TRIPOSG_STAGES = ["background", "encode", "denoise", "sdf_query", "marching_cubes", "post-processing", "export"]
POST_STAGES = ("cleanup", "decimate", "uv", "bake", "orient")


def triposg_stages(models_dir: Path, *, grid: int = 64, device: str = "cpu", repeats: int = 2,
                   folder: Path | None = None) -> dict[str, dict[str, float]]:
    """Seconds per TripoSG stage on the twins (or on ``folder``, e.g. the published weights), best of ``repeats``."""
    from PIL import Image, ImageDraw

    from pipelines.mesh import MeshOptions, export_glb
    from pipelines.mesh.triposg import TripoSGBackend
    from pipelines.testing import materialize_tiny_mesh_models

    twins = materialize_tiny_mesh_models(models_dir / "tiny")
    img = Image.new("RGB", (256, 200), "white")
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((50, 70, 206, 180), 18, fill=(154, 78, 28))
    draw.arc((90, 10, 166, 110), 180, 360, fill=(110, 50, 20), width=9)
    rows = {}
    for role in ("triposg", "triposg-scribble"):
        path = folder if folder is not None else twins[role]
        tiny = folder is None
        backend = TripoSGBackend.load(path, model_name=role, device=device, steps=2 if tiny else None,
                                      num_tokens=64 if tiny else None)
        if folder is not None and backend.takes_text != (role == "triposg-scribble"):
            continue
        options = MeshOptions(grid=grid, face_budget=20000, texture_size=1024, seed=1)
        best: dict[str, float] = {}
        for _ in range(repeats):
            result = backend.reconstruct(img, options, prompt="a structured tote" if backend.takes_text else None)
            t = result.params["timings"]
            row = {stage: t.get(stage, 0.0) for stage in TRIPOSG_STAGES[:5]}
            row["post-processing"] = sum(t.get(stage, 0.0) for stage in POST_STAGES)
            start = time.perf_counter()
            export_glb(result.mesh)
            row["export"] = time.perf_counter() - start
            best = {k: min(v, best.get(k, v)) for k, v in row.items()}
        s = backend.sampling
        rows[f"{role} ({s.steps} steps, {s.num_tokens} tok, {grid}^3)"] = best
    return rows


def triposg_table(rows: dict[str, dict[str, float]]) -> None:
    width = max(24, *(len(name) + 2 for name in rows))
    print(f"{'stage':<17}" + "".join(f"{name:>{width}}" for name in rows))
    for stage in TRIPOSG_STAGES + ["total"]:
        cells = []
        for timings in rows.values():
            total = sum(timings.values())
            value = total if stage == "total" else timings[stage]
            cells.append(f"{value:8.3f} s {100 * value / total:6.1f} %")
        print(f"{stage:<17}" + "".join(f"{c:>{width}}" for c in cells))


def post_200k() -> tuple[dict[str, float], int, int]:
    import numpy as np
    import trimesh

    from pipelines.mesh import MeshOptions
    from pipelines.mesh.post import StageTimer, finish, vertex_colour_fn

    sphere = trimesh.creation.uv_sphere(radius=0.5, count=[224, 224])
    rng = np.random.default_rng(0)
    sphere.vertices += rng.normal(scale=0.002, size=sphere.vertices.shape)
    colours = (sphere.vertices - sphere.vertices.min(0)) / np.ptp(sphere.vertices, 0)
    faces_in = len(sphere.faces)
    timer = StageTimer()
    with timer.stage("colour-field"):
        colour = vertex_colour_fn(sphere.vertices, colours)
    start = time.perf_counter()
    mesh, _ = finish(sphere, colour, MeshOptions(face_budget=20000, texture_size=1024), timer=timer, per_vertex=True)
    timer.timings["total"] = time.perf_counter() - start
    return timer.timings, faces_in, len(mesh.faces)


def multiview(models_dir: Path, repeats: int = 2) -> dict[str, dict[str, float]]:
    """Seconds per stage of ``--texture multiview``: on the tiny twins (lrm mesh, 32 px views, 2 steps), and the
    model-free stages (geometry maps, back-projection) at the standard profile's size (768 px views, 40k faces,
    1024^2 atlas), where only the view generation itself would need the real MV-Adapter and a GPU."""
    import numpy as np
    import trimesh
    from PIL import Image, ImageDraw

    from design_studio.services import Studio
    from design_studio.settings import Settings
    from pipelines import render
    from pipelines.mesh import MeshOptions
    from pipelines.mesh.post import unwrap_uv
    from pipelines.texture import PaintOptions, bake_views, paint_mesh

    studio = Studio(Settings(data_dir=Path(tempfile.mkdtemp()) / "data", models_dir=models_dir, profile="tiny", device="cpu"))
    img = Image.new("RGB", (256, 200), "white")
    ImageDraw.Draw(img).rounded_rectangle((50, 70, 206, 180), 18, fill=(154, 78, 28))
    result = studio.meshes.backend("lrm").reconstruct(img, MeshOptions(face_budget=5000, texture_size=512, grid=48, seed=1))
    generator = studio.models.get("multiview")  # loading is not timed: the studio keeps models loaded
    rows: dict[str, dict[str, float]] = {}
    best: dict[str, float] = {}
    for _ in range(repeats):
        _, record, _ = paint_mesh(result.mesh, img, generator, PaintOptions(view_size=32, steps=2, seed=1))
        best = {k: min(v, best.get(k, v)) for k, v in record["timings"].items()}
    rows[f"tiny twin ({len(result.mesh.faces)}f, 32px)"] = best

    sphere = trimesh.creation.icosphere(subdivisions=6, radius=0.5)  # 81920 faces
    from pipelines.mesh.post import decimate

    mesh = decimate(sphere, 40000)
    vertices, faces, uv = unwrap_uv(mesh, resolution=1024)
    frame = render.ViewFrame.fit(vertices)
    points = frame.points(vertices)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    maps = render.render_geometry_maps(points, faces, render.mv_adapter_views(), 768)
    timings["geometry_maps"] = time.perf_counter() - start
    views = np.clip(maps.position + 0.5, 0, 1)
    start = time.perf_counter()
    bake_views(points, faces, uv, render.stitched_vertex_normals(points, faces), maps.views, views, maps.depth, 1024)
    timings["backproject"] = time.perf_counter() - start
    rows[f"full size, no model ({len(faces)}f, 768px)"] = timings
    return rows


def docs_picture(path: Path) -> None:
    """README picture: one strap-and-panel image through each backend, thumbnails side by side."""
    from PIL import Image, ImageDraw

    from design_studio.services import Studio
    from design_studio.settings import Settings
    from pipelines import render
    from pipelines.mesh import MeshOptions
    from pipelines.testing import materialize_tiny_models

    models = Path(tempfile.gettempdir()) / "studio-bench-models"
    materialize_tiny_models(models / "tiny")
    studio = Studio(Settings(data_dir=Path(tempfile.mkdtemp()) / "data", models_dir=models, profile="tiny", device="cpu"))
    src = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(src)
    draw.rounded_rectangle((48, 120, 208, 220), 16, fill=(154, 78, 28))  # a leather panel
    draw.line((60, 170, 196, 170), fill=(95, 45, 15), width=3)  # stitching
    draw.arc((70, 20, 186, 150), 180, 360, fill=(120, 55, 20), width=10)  # a thin handle
    tiles = [src.resize((200, 200))]
    for name in ("depth-relief", "lrm", "shap-e"):
        result = studio.meshes.backend(name).reconstruct(src, MeshOptions(resolution=128, face_budget=8000,
                                                                          texture_size=512, grid=64, seed=1))
        tiles.append(render.render_thumbnail(result.mesh, 200, angle_deg=-35))
    sheet = Image.new("RGB", (200 * len(tiles), 224), "white")
    label = ImageDraw.Draw(sheet)
    for i, (tile, text) in enumerate(zip(tiles, ["input", "depth-relief", "lrm (tiny twin)", "shap-e (tiny twin)"])):
        sheet.paste(tile, (200 * i, 24))
        label.text((200 * i + 8, 6), text, fill=(40, 40, 40))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    import torch

    if "--picture" in sys.argv:
        docs_picture(Path(__file__).resolve().parents[1] / "assets" / "docs" / "thin-parts.png")
        return

    from pipelines.testing import materialize_tiny_models

    if "--triposg" in sys.argv:  # python -m bench.mesh --triposg [--grid N] [--device cuda] [--folder DIR]
        def arg(flag, default):
            return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else default

        device, grid = arg("--device", "cpu"), int(arg("--grid", "64"))
        folder = Path(arg("--folder", "")) if "--folder" in sys.argv else None
        print(f"\n== TripoSG per stage on {device}, {'the twins' if folder is None else folder} (best of 2) ==")
        triposg_table(triposg_stages(Path(tempfile.gettempdir()) / "studio-bench-models", grid=grid, device=device,
                                     folder=folder))
        return

    print(f"device: cpu ({torch.get_num_threads()} threads); GPU available: {torch.cuda.is_available()}")
    models = Path(tempfile.gettempdir()) / "studio-bench-models"
    materialize_tiny_models(models / "tiny")
    print("\n== per stage, tiny twins (best of 2) ==")
    table(backends(models))
    print("\n== TripoSG per stage, tiny twins, grid 64^3 (best of 2) ==")
    triposg_table(triposg_stages(models, grid=64))
    print("\n== --texture multiview, seconds per stage (best of 2; 'multiview' = view generation) ==")
    for name, timings in multiview(models).items():
        print(f"{name:<36}" + "".join(f"{stage} {seconds:7.3f} s   " for stage, seconds in timings.items()))
    timings, n_in, n_out = post_200k()
    print(f"\n== post-processing {n_in} faces -> {n_out} faces, 1024^2 texture (target < 5 s on CPU) ==")
    for stage, seconds in timings.items():
        print(f"{stage:<15}{seconds:8.3f} s")
    verdict = "MEETS" if timings["total"] < 5.0 else "MISSES"
    print(f"{verdict} the 5 s target: {timings['total']:.2f} s")
    if not torch.cuda.is_available():
        print("no GPU here: full-size GPU timings not measured")


if __name__ == "__main__":
    main()
