"""Concept generation in the designer's tab: prompt, sketch or image, style preset and options ->
gallery of concepts -> chosen design -> variations, refine, reuse settings."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..errors import InvalidRequest
from ..services import Studio
from .common import actor_of, optional_int, progress_adapter, user_errors
from .image_inputs import guard_image_input
from .shortlist_panel import build_shortlist_panel

CHOOSE_HINT = "Generate concepts, then click one to choose it."
NO_PRESET = "none"
START_FROM = ("Text", "Sketch", "Image")


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
    preset: gr.Dropdown
    start_from: gr.Radio
    sketch: gr.Sketchpad
    init_image: gr.Image
    strength: gr.Slider
    sketch_mode: gr.Dropdown
    speed: gr.Radio
    scheduler: gr.Dropdown
    adapters: gr.Textbox

    def generation_fields(self) -> list:
        return [self.prompt, self.negative, self.project, self.n, self.seed, self.steps, self.guidance, self.width,
                self.height, self.preset, self.start_from, self.sketch, self.init_image, self.strength,
                self.sketch_mode, self.speed, self.scheduler, self.adapters]


@dataclass
class ConceptResults:
    gallery: gr.Gallery
    chosen: gr.Markdown
    design_ids: gr.State  # ids shown in the gallery, in order
    selected: gr.State  # the chosen design id (other panels read it)


def preset_choices(studio: Studio) -> list[tuple[str, str]]:
    return [("No preset", NO_PRESET)] + [(p.label, key) for key, p in studio.presets().all().items()]


def build_preset_editor(studio: Studio, preset: gr.Dropdown) -> None:
    """Shows the chosen preset's template, negative prompt and aspect; edits are saved to the data dir."""
    with gr.Accordion("Style preset (editable)", open=False):
        template = gr.Textbox(label="Prompt template ({prompt} is your text)", lines=3, elem_id="preset-template")
        negative = gr.Textbox(label="Preset negative prompt", lines=2, elem_id="preset-negative")
        aspect = gr.Textbox(label="Aspect (width:height)", max_lines=1, elem_id="preset-aspect")
        save = gr.Button("Save preset", size="sm", elem_id="preset-save")
        saved = gr.Markdown("")

    def show(category):
        if not category or category == NO_PRESET:
            return "", "", "", ""
        p = studio.presets().get(category)
        return p.prompt_template, p.negative_prompt, p.aspect, ""

    @user_errors
    def on_save(category, template_text, negative_text, aspect_text):
        from ..presets import StylePreset

        if not category or category == NO_PRESET:
            raise InvalidRequest("choose a preset to edit first")
        current = studio.presets().get(category)
        path = studio.presets().save(StylePreset(category, current.label, template_text, negative_text, aspect_text))
        return f"Saved to `{path}`."

    preset.change(show, [preset], [template, negative, aspect, saved], api_name=False)
    save.click(on_save, [preset, template, negative, aspect], [saved], api_name="save_preset")


def build_inputs(studio: Studio) -> ConceptInputs:
    d, s = studio.defaults, studio.settings
    prompt = gr.Textbox(label="Prompt", lines=3, max_length=s.max_prompt_chars, elem_id="prompt",
                        placeholder="e.g. a structured top-handle handbag in cognac leather")
    negative = gr.Textbox(label="Negative prompt", lines=1, max_length=s.max_prompt_chars, elem_id="negative",
                          placeholder="what to avoid, e.g. logo, text, clutter")
    preset = gr.Dropdown(preset_choices(studio), value=NO_PRESET, label="Product category (style preset)",
                         elem_id="preset")
    build_preset_editor(studio, preset)
    project = gr.Textbox(label="Project", value="Inbox", max_length=200)
    start_from = gr.Radio(list(START_FROM), value="Text", label="Start from", elem_id="start-from")
    with gr.Accordion("Sketch or starting image", open=True):
        sketch = gr.Sketchpad(
            type="pil", label="Sketch (draw, or upload a scan / photo of paper)", elem_id="sketch",
            sources=("upload", "clipboard"), canvas_size=(512, 512), height=360,
            brush=gr.Brush(colors=["#000000"], default_size=4, color_mode="fixed"),
        )
        init_image = gr.Image(type="filepath", label="Starting image (image → image)", elem_id="init-image",
                              sources=("upload", "clipboard"), height=200)
        guard_image_input(sketch, max_pixels=s.max_image_pixels, label="sketch")
        guard_image_input(init_image, max_pixels=s.max_image_pixels, label="starting image")
        with gr.Row():
            strength = gr.Slider(0.0, 1.0, value=0.8, step=0.05, elem_id="strength",
                                 label="Strength (sketch: how strongly it holds · image: how much it changes)")
            sketch_mode = gr.Dropdown(["auto", "lines", "edges"], value="auto", label="Sketch clean-up")
    with gr.Accordion("Options", open=False):
        speed = gr.Radio(["draft", "final"], value=None, label="Speed preset (sets the steps)", elem_id="speed")
        n = gr.Slider(1, s.max_images, value=s.default_images, step=1, label="Images")
        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random; image i uses seed + i)", elem_id="seed")
        steps = gr.Slider(1, s.max_steps, value=d["steps"], step=1, label="Steps", elem_id="steps")
        guidance = gr.Slider(0, 20, value=d["guidance"], step=0.5, label="Guidance")
        with gr.Row():
            width = gr.Number(value=d["width"], precision=0, label="Width (multiple of 8; a preset sets it)")
            height = gr.Number(value=d["height"], precision=0, label="Height (multiple of 8)")
        scheduler = gr.Dropdown(studio.scheduler_names(), value=None, label="Scheduler (empty: the model's own)",
                                elem_id="scheduler")
        names = studio.adapter_names()
        adapters = gr.Textbox(label="Adapters (NAME:WEIGHT, comma-separated)", elem_id="adapters",
                              placeholder=", ".join(f"{x}:0.8" for x in names[:2]) or "no adapters installed",
                              info="available: " + (", ".join(names) if names else f"none in {s.adapters_dir}"))
    generate = gr.Button("Generate", variant="primary", elem_id="generate")

    def on_speed(value):
        return gr.update() if not value else studio.speed_steps(value)

    speed.change(on_speed, [speed], [steps], api_name=False)
    return ConceptInputs(prompt, negative, project, n, seed, steps, guidance, width, height, generate, preset,
                         start_from, sketch, init_image, strength, sketch_mode, speed, scheduler, adapters)


def _gallery_items(studio: Studio, designs) -> list:
    return [(str(studio.store.file_path(x)), f"#{x.id} · seed {x.seed}") for x in designs]


def _note(designs) -> str:
    first = designs[0]
    text = f"Chosen: design #{first.id} (seed {first.seed}). Click another concept to change."
    fallbacks = first.params.get("memory_fallbacks") or []
    if fallbacks:
        text += "\n\n**Memory:** " + "; ".join(fallbacks)
    if first.params.get("mode") == "sketch" and first.params.get("sketch_backend") == "img2img":
        text += "\n\n_This profile has no sketch model; the sketch was used as a starting image._"
    return text


def build_results(studio: Studio, inputs: ConceptInputs) -> ConceptResults:
    gallery = gr.Gallery(label="Concepts", columns=4, height=360, elem_id="gallery",
                         object_fit="contain", allow_preview=False)
    chosen = gr.Markdown(CHOOSE_HINT, elem_id="chosen")
    design_ids = gr.State([])
    selected = gr.State(None)
    with gr.Row():
        vary_n = gr.Slider(1, studio.settings.max_images, value=4, step=1, label="Variations")
        vary_strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="Variation strength")
    with gr.Row():
        vary = gr.Button("Variations of chosen", elem_id="vary", size="sm")
        refine = gr.Button("Refine chosen (same seed, prompt above)", elem_id="refine", size="sm")
        reuse = gr.Button("Reuse settings of chosen", elem_id="reuse", size="sm")

    @user_errors
    def on_generate(prompt, negative, project, n, seed, steps, guidance, width, height, preset, start_from, sketch,
                    init_image, strength, sketch_mode, speed, scheduler, adapters, request: gr.Request,
                    progress=gr.Progress()):
        use_sketch, use_image = start_from == "Sketch", start_from == "Image"
        if use_sketch and not sketch:
            raise InvalidRequest("sketch is empty: draw or upload a sketch first")
        if use_image and not init_image:
            raise InvalidRequest("no starting image: upload one, or start from text")
        has_preset = bool(preset and preset != NO_PRESET)
        designs = studio.generate_concepts(
            prompt, negative_prompt=negative, project=project, n=int(n), seed=optional_int(seed),
            steps=int(steps), guidance=float(guidance),
            width=None if has_preset else optional_int(width), height=None if has_preset else optional_int(height),
            preset=preset if has_preset else None,
            sketch=sketch if use_sketch else None, sketch_mode=sketch_mode or "auto",
            init_image=init_image if use_image else None,
            strength=float(strength) if (use_sketch or use_image) else None,
            adapters=[adapters] if adapters and adapters.strip() else [], scheduler=scheduler or None,
            speed=speed or None, on_progress=progress_adapter(progress), actor=actor_of(studio, request),
        )
        return _gallery_items(studio, designs), [x.id for x in designs], designs[0].id, _note(designs)

    i = inputs
    i.generate.click(on_generate, i.generation_fields(), [gallery, design_ids, selected, chosen],
                     api_name="generate", concurrency_id="gpu")

    def on_select(ids, evt: gr.SelectData):
        if not ids or evt.index is None or evt.index >= len(ids):
            return None, CHOOSE_HINT
        design = studio.store.design(ids[evt.index])
        return design.id, f"Chosen: design #{design.id} (seed {design.seed})."

    gallery.select(on_select, [design_ids], [selected, chosen], api_name=False)

    def require_chosen(chosen_id):
        if chosen_id is None:
            raise InvalidRequest("choose a concept first (click it in the gallery)")
        return int(chosen_id)

    @user_errors
    def on_vary(chosen_id, count, amount, request: gr.Request, progress=gr.Progress()):
        designs = studio.vary_design(require_chosen(chosen_id), n=int(count), strength=float(amount),
                                     on_progress=progress_adapter(progress), actor=actor_of(studio, request))
        return _gallery_items(studio, designs), [x.id for x in designs], designs[0].id, \
            _note(designs) + f"\n\nVariations of #{designs[0].parent_id}."

    @user_errors
    def on_refine(chosen_id, prompt, request: gr.Request, progress=gr.Progress()):
        design = studio.refine_design(require_chosen(chosen_id), prompt, on_progress=progress_adapter(progress),
                                     actor=actor_of(studio, request))
        return _gallery_items(studio, [design]), [design.id], design.id, \
            _note([design]) + f"\n\nRefined from #{design.parent_id}."

    @user_errors
    def on_reuse(chosen_id):
        v = studio.reuse_settings(require_chosen(chosen_id))
        d = studio.defaults
        start = {"sketch": "Sketch", "img2img": "Image"}.get(v["mode"], "Text")
        return (v["prompt"], v["negative_prompt"], v["preset"] or NO_PRESET, v["seed"], 1, v["steps"] or d["steps"],
                v["guidance"] if v["guidance"] is not None else d["guidance"], v["width"] or d["width"],
                v["height"] or d["height"], v["scheduler"], v["adapters"], v["strength"] if v["strength"] is not None
                else 0.8, start, v["speed"])

    vary.click(on_vary, [selected, vary_n, vary_strength], [gallery, design_ids, selected, chosen],
               api_name="vary", concurrency_id="gpu")
    refine.click(on_refine, [selected, i.prompt], [gallery, design_ids, selected, chosen],
                 api_name="refine", concurrency_id="gpu")
    reuse.click(on_reuse, [selected], [i.prompt, i.negative, i.preset, i.seed, i.n, i.steps, i.guidance, i.width,
                                       i.height, i.scheduler, i.adapters, i.strength, i.start_from, i.speed],
                api_name="reuse_settings")
    build_shortlist_panel(studio, selected)
    return ConceptResults(gallery, chosen, design_ids, selected)
