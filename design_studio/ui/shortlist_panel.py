"""'Add to shortlist' under the concept gallery: puts the chosen design on the review board."""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from .common import actor_of, user_errors


def build_shortlist_panel(studio: Studio, selected: gr.State) -> None:
    with gr.Row(elem_id="shortlist-row"):
        note = gr.Textbox(label="Note for the reviewer", placeholder="why this one", max_length=2000, scale=3,
                          elem_id="shortlist-note")
        add = gr.Button("Add to shortlist", scale=1, elem_id="shortlist")
    override = gr.Textbox(label="Near-copy override reason (creative directors only)", max_length=2000,
                          placeholder="only when the brand guard flags this design as close to the archive",
                          elem_id="shortlist-override")
    done = gr.Markdown("", elem_id="shortlist-result")

    @user_errors
    def on_shortlist(design_id, text, reason, request: gr.Request):
        if design_id is None:
            raise gr.Error("Choose a concept first: generate, then click an image.")
        design = studio.shortlist(int(design_id), actor=actor_of(studio, request), note=text or "",
                                  override_reason=reason or None)
        return f"Design #{design.id} is on the review board ({design.status}).", "", ""

    add.click(on_shortlist, [selected, note, override], [done, note, override], api_name="shortlist_chosen",
              concurrency_id="cpu", concurrency_limit=4)
