"""Gradio Blocks for the studio; handlers stay thin and call ``design_studio.services``. No torch here."""
from .app import build_app

__all__ = ["build_app"]
