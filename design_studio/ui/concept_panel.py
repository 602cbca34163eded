"""Concept generation in the designer's tab: prompt and options -> gallery of concepts -> chosen design."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..services import Studio
from .common import optional_int, progress_adapter, user_errors
from .shortlist_panel import build_shortlist_panel

CHOOSE_HINT = "Generate concepts, then click one to choose it."


@dataclass
class ConceptInputs:
    prompt: gr.Textbox
    negative: gr.Textbox
    project: gr.Textbox
    n: gr.Slider
    seed: gr.Number
    steps: gr.Slider
    guidance: gr.Slider
    width: gr.Number
    height: gr.Number
    generate: gr.Button


@dataclass
class ConceptResults:
    gallery: gr.Gallery
    chosen: gr.Markdown
    design_ids: gr.State  # ids shown in the gallery, in order
    selected: gr.State  # the chosen design id (other panels read it)


def build_inputs(studio: Studio) -> ConceptInputs:
    d, s = studio.defaults, studio.settings
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
    return ConceptInputs(prompt, negative, project, n, seed, steps, guidance, width, height, generate)


def build_results(studio: Studio, inputs: ConceptInputs) -> ConceptResults:
    gallery = gr.Gallery(label="Concepts", columns=4, height=360, elem_id="gallery",
                         object_fit="contain", allow_preview=False)
    chosen = gr.Markdown(CHOOSE_HINT, elem_id="chosen")
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

    i = inputs
    i.generate.click(
        on_generate,
        [i.prompt, i.negative, i.project, i.n, i.seed, i.steps, i.guidance, i.width, i.height],
        [gallery, design_ids, selected, chosen],
        api_name="generate",
        concurrency_id="gpu",
    )

    def on_select(ids, evt: gr.SelectData):
        if not ids or evt.index is None or evt.index >= len(ids):
            return None, CHOOSE_HINT
        design = studio.store.design(ids[evt.index])
        return design.id, f"Chosen: design #{design.id} (seed {design.seed})."

    gallery.select(on_select, [design_ids], [selected, chosen], api_name=False)
    build_shortlist_panel(studio, selected)
    return ConceptResults(gallery, chosen, design_ids, selected)
