"""Design Studio: the application (settings, model catalogue, store, services, Gradio UI, CLI)."""

__version__ = "0.1.0"
