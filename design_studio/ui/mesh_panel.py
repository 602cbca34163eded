"""Image -> 3D in the designer's tab: Make 3D on the chosen design, interactive viewer, GLB download."""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from .common import progress_adapter, user_errors


def build_mesh_panel(studio: Studio, selected: gr.State) -> None:
    with gr.Row():
        size_cm = gr.Number(value=30, label="Largest size (cm)", minimum=0.1, maximum=1000)
        make3d = gr.Button("Make 3D", variant="primary", elem_id="make3d")
    viewer = gr.Model3D(label="3D", height=360, elem_id="viewer", clear_color=(0.96, 0.95, 0.93, 1.0))
    download = gr.File(label="Download GLB", elem_id="download")

    @user_errors
    def on_make3d(design_id, size_cm, progress=gr.Progress()):
        if design_id is None:
            raise gr.Error("Choose a concept first: generate, then click an image.")
        if size_cm is None:
            raise gr.Error("Enter the largest size in centimetres.")
        mesh = studio.make_mesh(int(design_id), size_cm=float(size_cm), on_progress=progress_adapter(progress))
        return str(studio.store.file_path(mesh)), str(studio.download_copy(mesh))

    make3d.click(on_make3d, [selected, size_cm], [viewer, download], api_name="make_mesh", concurrency_id="gpu")
