"""Image -> 3D in the designer's tab: backend and settings, viewer beside thumbnail and turntable, exports, colourways."""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from .common import actor_of, progress_adapter, user_errors

MATERIALS = ["leather", "canvas", "metal", "silk"]
FORMATS = ["glb", "obj", "zip"]


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
        gr.Markdown("Thin, flat parts (straps, handles, leather panels): **depth-relief**. Whole closed objects: "
                    "**lrm**. Restricted licences are marked and never the default.")
    with gr.Row():
        size_cm = gr.Number(value=30, label="Largest size (cm)", minimum=0.1, maximum=1000)
        make3d = gr.Button("Make 3D", variant="primary", elem_id="make3d")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            viewer = gr.Model3D(label="3D", height=360, elem_id="viewer", clear_color=(0.96, 0.95, 0.93, 1.0))
        with gr.Column(scale=2, min_width=160):
            thumbnail = gr.Image(label="Thumbnail", type="filepath", height=170, elem_id="mesh-thumbnail",
                                 interactive=False)
            turntable = gr.Image(label="Turntable", type="filepath", height=170, elem_id="mesh-turntable",
                                 interactive=False)
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
    def on_make3d(design_id, size_cm, backend, material, face_budget, texture_size, request: gr.Request,
                  progress=gr.Progress()):
        if design_id is None:
            raise gr.Error("Choose a concept first: generate, then click an image.")
        if size_cm is None:
            raise gr.Error("Enter the largest size in centimetres.")
        if face_budget is None or face_budget < 4:
            raise gr.Error(f"Face budget must be at least 4 faces, got {face_budget}.")
        mesh = studio.make_mesh(int(design_id), backend=backend, size_cm=float(size_cm), material=material,
                                face_budget=int(face_budget), texture_size=int(texture_size),
                                on_progress=progress_adapter(progress), actor=actor_of(studio, request))
        thumb, gif = previews(mesh)
        p = mesh.params
        info = (f"design {mesh.id} · {p['backend']} · {p['faces']} faces · "
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

    make3d.click(on_make3d, [selected, size_cm, backend, material, face_budget, texture_size],
                 [viewer, thumbnail, turntable, download, mesh_info, mesh_state], api_name="make_mesh",
                 concurrency_id="gpu")
    export.click(on_export, [mesh_state, fmt], [exported], api_name="export_mesh")
    make_cw.click(on_colourways, [mesh_state, palette, count], [colourways], api_name="colourways",
                  concurrency_id="gpu")
