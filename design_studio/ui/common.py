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


def end_sessions(username: str, blocks=None) -> int:
    """Drop every Gradio sign-in token of ``username`` (the file routes then refuse it too); returns how many.
    ``blocks``: the app (default: the one serving the current request)."""
    from gradio.context import LocalContext

    blocks = blocks if blocks is not None else LocalContext.blocks.get(None)
    app = getattr(blocks, "server_app", None)
    tokens = getattr(app, "tokens", None)
    if not tokens:
        return 0
    doomed = [token for token, name in list(tokens.items()) if name == username]
    for token in doomed:
        tokens.pop(token, None)
    return len(doomed)


def actor_of(studio, request):
    """The request's actor: the account Gradio's sign-in put on the session (re-read now), or the solo
    actor when the studio has no accounts. A removed account's session is refused here."""
    return studio.access.session(getattr(request, "username", None))
