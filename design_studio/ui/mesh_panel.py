"""Image -> 3D in the designer's tab: backend and settings, viewer beside thumbnail and turntable, exports, colourways."""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from .common import actor_of, progress_adapter, user_errors
from .image_inputs import guard_image_input

MATERIALS = ["leather", "canvas", "metal", "silk"]
FORMATS = ["glb", "obj", "usdz", "zip"]
TEXTURES = [("project — the concept image projected (fast)", "project"),
            ("multiview — six generated views painted all round (MV-Adapter)", "multiview")]
TOPOLOGIES = [("triangles", "triangles"), ("quads (CAD/CLO handoff; OBJ and USDZ keep them, GLB is triangles)", "quads")]


def _write_downloads(studio: Studio, design_id: int, files: dict[str, bytes]) -> list[str]:
    folder = studio.settings.downloads_dir / str(design_id)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        target = folder / name
        target.write_bytes(data)
        paths.append(str(target))
    return paths


def build_mesh_panel(studio: Studio, selected: gr.State) -> None:
    defaults = studio.mesh_defaults
    backends = [(f"{info.name} — {entry.licence_line}", info.name) for info, entry in studio.mesh_backends()]
    mesh_state = gr.State(None)  # id of the mesh design on show
    with gr.Accordion("3D settings", open=False):
        with gr.Row():
            backend = gr.Dropdown(backends, value=defaults["backend"], label="Backend", elem_id="mesh-backend")
            material = gr.Dropdown(MATERIALS, value="leather", label="Material preset", elem_id="mesh-material")
        with gr.Row():
            face_budget = gr.Number(value=defaults["face_budget"], label="Face budget", precision=0,
                                    elem_id="mesh-faces")
            texture_size = gr.Dropdown([256, 512, 1024, 2048], value=defaults["texture_size"], label="Texture size (px)",
                                       elem_id="mesh-texture")
        topology = gr.Radio(TOPOLOGIES, value="triangles", label="Topology", elem_id="mesh-topology")
        texture_mode = gr.Radio(TEXTURES, value=defaults["texture"], label="Texture", elem_id="mesh-texture-mode")
        gr.Markdown("Thin, flat parts (straps, handles, leather panels): **depth-relief**. Whole closed objects: "
                    "**triposg** (detailed) or **lrm** (fast). A sketch and a prompt: **Sketch → 3D** below "
                    "(triposg-scribble). Restricted licences are marked and never the default.")
    with gr.Row():
        size_cm = gr.Number(value=30, label="Largest size (cm)", minimum=0.1, maximum=1000)
        make3d = gr.Button("Make 3D", variant="primary", elem_id="make3d")
    with gr.Accordion("Sketch → 3D", open=False):
        with gr.Row():
            sketch = gr.Image(label="Sketch", type="filepath", sources=["upload", "clipboard"], height=180,
                              elem_id="mesh-sketch")
            guard_image_input(sketch, max_pixels=studio.settings.max_image_pixels, label="sketch")
            with gr.Column():
                sketch_prompt = gr.Textbox(label="What the sketch shows", placeholder="a structured tote with a top handle",
                                           max_lines=2, elem_id="mesh-sketch-prompt")
                sketch3d = gr.Button("Sketch → 3D", elem_id="sketch3d")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            viewer = gr.Model3D(label="3D", height=360, elem_id="viewer", clear_color=(0.96, 0.95, 0.93, 1.0))
        with gr.Column(scale=2, min_width=160):
            thumbnail = gr.Image(label="Thumbnail", type="filepath", height=170, elem_id="mesh-thumbnail",
                                 interactive=False)
            turntable = gr.Image(label="Turntable", type="filepath", height=170, elem_id="mesh-turntable",
                                 interactive=False)
            turntable_mp4 = gr.Video(label="Turntable (MP4)", height=170, elem_id="mesh-turntable-mp4",
                                     interactive=False, autoplay=True, loop=True)
    download = gr.File(label="Download GLB", elem_id="download")
    mesh_info = gr.Markdown(elem_id="mesh-info")
    with gr.Row():
        fmt = gr.Radio(FORMATS, value="zip", label="Export as", elem_id="export-format")
        export = gr.Button("Export", elem_id="export")
    exported = gr.File(label="Exported files", file_count="multiple", elem_id="exported")
    with gr.Accordion("Colourways", open=False):
        cards = list(studio.colour_cards())
        with gr.Row():
            palette = gr.Dropdown(cards, value=cards[0] if cards else None, label="Colour card", elem_id="palette")
            count = gr.Slider(1, 8, value=4, step=1, label="Variants")
            make_cw = gr.Button("Make colourways", elem_id="make-colourways")
        colourways = gr.Gallery(label="Colourways", columns=4, height=220, elem_id="colourways")

    def previews(design):
        thumb = studio.preview_path(design, "thumbnail")
        gif = studio.preview_path(design, "turntable")
        return (str(thumb) if thumb else None), (str(gif) if gif else None)

    @user_errors
    def on_make3d(design_id, size_cm, backend, material, face_budget, texture_size, topology, texture,
                  request: gr.Request, progress=gr.Progress()):
        if design_id is None:
            raise gr.Error("Choose a concept first: generate, then click an image.")
        if size_cm is None:
            raise gr.Error("Enter the largest size in centimetres.")
        if face_budget is None or face_budget < 4:
            raise gr.Error(f"Face budget must be at least 4 faces, got {face_budget}.")
        mesh = studio.make_mesh(int(design_id), backend=backend, size_cm=float(size_cm), material=material,
                                face_budget=int(face_budget), texture_size=int(texture_size),
                                topology=topology or "triangles", texture=texture,
                                on_progress=progress_adapter(progress), actor=actor_of(studio, request))
        thumb, gif = previews(mesh)
        p = mesh.params
        info = (f"design {mesh.id} · {p['backend']} · {p['faces']} faces · "
                f"{'watertight' if p.get('watertight') else 'not watertight'} · {p['size_cm']:g} cm · {p['material']} · "
                f"texture: {(p.get('texture') or {}).get('mode', 'project')}")
        topo = p.get("topology") or {}
        if topo.get("kind") == "quads":
            info += f" · {topo['quads']} quads + {topo['triangles']} triangles"
        if (p.get("bom") or {}).get("restricted"):
            info += " · **RESTRICTED:** " + "; ".join(p["bom"].get("restricted_parts", []))
        return (str(studio.store.file_path(mesh)), thumb, gif, str(studio.download_copy(mesh)), info, mesh.id)

    @user_errors
    def on_sketch3d(sketch_path, prompt, size_cm, material, face_budget, texture_size, request: gr.Request,
                    progress=gr.Progress()):
        # Checked before the sketch is stored, so a refused request leaves nothing behind.
        if not sketch_path:
            raise gr.Error("Upload a sketch first.")
        if not (prompt or "").strip():
            raise gr.Error("Say what the sketch shows (a short prompt) before making 3D from it.")
        if size_cm is None:
            raise gr.Error("Enter the largest size in centimetres.")
        if face_budget is None or face_budget < 4:
            raise gr.Error(f"Face budget must be at least 4 faces, got {face_budget}.")
        actor = actor_of(studio, request)
        image = studio.import_image(sketch_path, name="sketch.png", actor=actor)
        mesh = studio.make_mesh(image.id, backend="triposg-scribble", prompt=prompt, size_cm=float(size_cm),
                                material=material, face_budget=int(face_budget), texture_size=int(texture_size),
                                on_progress=progress_adapter(progress), actor=actor)
        thumb, gif = previews(mesh)
        p = mesh.params
        info = (f"design {mesh.id} · {p['backend']} · “{p.get('prompt', '')}” · {p['faces']} faces · "
                f"{'watertight' if p.get('watertight') else 'not watertight'} · {p['size_cm']:g} cm · {p['material']}")
        return (str(studio.store.file_path(mesh)), thumb, gif, str(studio.download_copy(mesh)), info, mesh.id)

    @user_errors
    def on_export(mesh_id, fmt):
        if mesh_id is None:
            raise gr.Error("Make a 3D mesh first.")
        return _write_downloads(studio, int(mesh_id), studio.export_mesh(int(mesh_id), fmt))

    @user_errors
    def on_colourways(mesh_id, palette, count, request: gr.Request):
        if mesh_id is None:
            raise gr.Error("Make a 3D mesh first.")
        variants = studio.make_colourways(int(mesh_id), palette=palette, n=int(count), actor=actor_of(studio, request))
        return [(previews(v)[0], f"{v.params['colourway']} {v.params['hex']}") for v in variants if previews(v)[0]]

    def on_mp4(mesh_id):
        if mesh_id is None:
            return None
        path = studio.preview_path(studio.store.design(int(mesh_id)), "turntable_mp4")
        return str(path) if path else None

    make3d.click(on_make3d, [selected, size_cm, backend, material, face_budget, texture_size, topology, texture_mode],
                 [viewer, thumbnail, turntable, download, mesh_info, mesh_state], api_name="make_mesh",
                 concurrency_id="gpu").success(on_mp4, [mesh_state], [turntable_mp4], api_name=False)
    sketch3d.click(on_sketch3d, [sketch, sketch_prompt, size_cm, material, face_budget, texture_size],
                   [viewer, thumbnail, turntable, download, mesh_info, mesh_state], api_name="sketch_to_mesh",
                   concurrency_id="gpu").success(on_mp4, [mesh_state], [turntable_mp4], api_name=False)
    export.click(on_export, [mesh_state, fmt], [exported], api_name="export_mesh")
    make_cw.click(on_colourways, [mesh_state, palette, count], [colourways], api_name="colourways",
                  concurrency_id="gpu")
