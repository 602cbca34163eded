"""'Add to shortlist' under the concept gallery: puts the chosen design on the review board."""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from .common import user_errors


def build_shortlist_panel(studio: Studio, selected: gr.State) -> None:
    with gr.Row(elem_id="shortlist-row"):
        note = gr.Textbox(label="Note for the reviewer", placeholder="why this one", max_length=2000, scale=3,
                          elem_id="shortlist-note")
        add = gr.Button("Add to shortlist", scale=1, elem_id="shortlist")
    done = gr.Markdown("", elem_id="shortlist-result")

    @user_errors
    def on_shortlist(design_id, text, request: gr.Request):
        if design_id is None:
            raise gr.Error("Choose a concept first: generate, then click an image.")
        design = studio.shortlist(int(design_id), actor=getattr(request, "username", None), note=text or "")
        return f"Design #{design.id} is on the review board ({design.status}).", ""

    add.click(on_shortlist, [selected, note], [done, note], api_name="shortlist_chosen",
              concurrency_id="cpu", concurrency_limit=4)
