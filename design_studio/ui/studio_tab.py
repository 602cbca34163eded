"""The designer's tab: prompt -> gallery of concepts -> choose one -> Make 3D -> viewer and download."""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from .common import optional_int, progress_adapter, user_errors


def build_studio_tab(studio: Studio) -> None:
    d = studio.defaults
    s = studio.settings
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = gr.Textbox(label="Prompt", lines=3, max_length=s.max_prompt_chars, elem_id="prompt",
                                placeholder="e.g. a structured top-handle handbag in cognac leather, studio product shot")
            negative = gr.Textbox(label="Negative prompt", lines=1, max_length=s.max_prompt_chars,
                                  placeholder="what to avoid, e.g. logo, text, clutter")
            project = gr.Textbox(label="Project", value="Inbox", max_length=200)
            with gr.Accordion("Options", open=False):
                n = gr.Slider(1, s.max_images, value=s.default_images, step=1, label="Images")
                seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random; image i uses seed + i)")
                steps = gr.Slider(1, s.max_steps, value=d["steps"], step=1, label="Steps")
                guidance = gr.Slider(0, 20, value=d["guidance"], step=0.5, label="Guidance")
                with gr.Row():
                    width = gr.Number(value=d["width"], precision=0, label="Width (multiple of 8)")
                    height = gr.Number(value=d["height"], precision=0, label="Height (multiple of 8)")
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Column(scale=3, min_width=360):
            gallery = gr.Gallery(label="Concepts", columns=4, height=360, elem_id="gallery",
                                 object_fit="contain", allow_preview=False)
            chosen = gr.Markdown("Generate concepts, then click one to choose it.", elem_id="chosen")
            with gr.Row():
                size_cm = gr.Number(value=30, label="Largest size (cm)", minimum=0.1, maximum=1000)
                make3d = gr.Button("Make 3D", variant="primary", elem_id="make3d")
            viewer = gr.Model3D(label="3D", height=360, elem_id="viewer", clear_color=(0.96, 0.95, 0.93, 1.0))
            download = gr.File(label="Download GLB", elem_id="download")

    design_ids = gr.State([])
    selected = gr.State(None)

    @user_errors
    def on_generate(prompt, negative, project, n, seed, steps, guidance, width, height, progress=gr.Progress()):
        designs = studio.generate_concepts(
            prompt, negative_prompt=negative, project=project, n=int(n), seed=optional_int(seed),
            steps=int(steps), guidance=float(guidance), width=optional_int(width), height=optional_int(height),
            on_progress=progress_adapter(progress),
        )
        items = [(str(studio.store.file_path(x)), f"#{x.id} · seed {x.seed}") for x in designs]
        first = designs[0]
        note = f"Chosen: design #{first.id} (seed {first.seed}). Click another concept to change."
        return items, [x.id for x in designs], first.id, note

    generate.click(
        on_generate,
        [prompt, negative, project, n, seed, steps, guidance, width, height],
        [gallery, design_ids, selected, chosen],
        api_name="generate",
        concurrency_id="gpu",
    )

    def on_select(ids, evt: gr.SelectData):
        if not ids or evt.index is None or evt.index >= len(ids):
            return None, "Generate concepts, then click one to choose it."
        design = studio.store.design(ids[evt.index])
        return design.id, f"Chosen: design #{design.id} (seed {design.seed})."

    gallery.select(on_select, [design_ids], [selected, chosen], api_name=False)

    @user_errors
    def on_make3d(design_id, size_cm, progress=gr.Progress()):
        if design_id is None:
            raise gr.Error("Choose a concept first: generate, then click an image.")
        if size_cm is None:
            raise gr.Error("Enter the largest size in centimetres.")
        mesh = studio.make_mesh(int(design_id), size_cm=float(size_cm), on_progress=progress_adapter(progress))
        return str(studio.store.file_path(mesh)), str(studio.download_copy(mesh))

    make3d.click(on_make3d, [selected, size_cm], [viewer, download], api_name="make_mesh", concurrency_id="gpu")
