"""Helpers every tab uses: error translation and progress adapters."""
from __future__ import annotations

import functools

import gradio as gr

from ..errors import StudioError
from ..services.jobs import step as job_step


def user_errors(fn):
    """Show ``StudioError`` as a ``gr.Error`` (a readable toast), never as a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None

    return wrapper


def progress_adapter(progress: gr.Progress):
    def report(fraction: float, message: str) -> None:
        job_step(fraction, message)  # raises Cancelled when the user pressed Stop
        progress(fraction, desc=message)

    return report


def optional_int(value) -> int | None:
    """Gradio numbers come as floats or None; -1 or empty means 'choose for me'."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value != value:  # NaN
        raise StudioError("a number field holds NaN; enter a whole number")
    number = float(value)
    if number < 0:
        return None
    if number != int(number):
        raise StudioError(f"{value} is not a whole number")
    return int(number)


def actor_of(request) -> str:
    """The signed-in user's name from Gradio's request ('' in solo mode)."""
    return getattr(request, "username", None) or ""
