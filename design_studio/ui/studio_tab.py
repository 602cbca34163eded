"""The designer's tab: concept panel on the left and top right, 3D panel below the gallery."""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from .concept_panel import build_inputs, build_results
from .mesh_panel import build_mesh_panel


def build_studio_tab(studio: Studio) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            inputs = build_inputs(studio)
        with gr.Column(scale=3, min_width=360):
            results = build_results(studio, inputs)
            build_mesh_panel(studio, results.selected)
