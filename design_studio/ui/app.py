"""Assembles the studio page from its tabs."""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from .ledger_tab import build_ledger_tab
from .studio_tab import build_studio_tab


def model_banner(studio: Studio) -> str:
    """One line per missing model, or the profile and licences when all are present."""
    statuses = studio.model_status()
    missing = [st for st in statuses if not st.available]
    if missing:
        lines = [f"**Models missing for the `{studio.settings.profile}` profile** — generation will fail until they are here:"]
        lines += [f"- {st.entry.role}: `{st.entry.repo_id}` — {st.how_to_get}" for st in missing]
        return "\n".join(lines)
    licences = "; ".join(f"{st.entry.role}: {st.entry.repo_id} — {st.entry.licence_line}" for st in statuses)
    return f"Profile **{studio.settings.profile}** · {licences}"


def build_app(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="Design Studio", analytics_enabled=False) as demo:
        gr.Markdown("# Design Studio\nPrompt → concept images → textured 3D. Everything stays on this machine.")
        gr.Markdown(model_banner(studio), elem_id="model-banner")
        with gr.Tabs():
            with gr.Tab("Studio", id="studio"):
                build_studio_tab(studio)
            with gr.Tab("Ledger", id="ledger"):
                build_ledger_tab(studio)
    return demo
