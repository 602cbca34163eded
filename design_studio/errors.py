"""Errors the application raises on purpose; the UI shows them as ``gr.Error``, the CLI as one stderr line."""
from __future__ import annotations


class StudioError(Exception):
    """Base of every error a designer should read as a message, not a traceback."""


class InvalidRequest(StudioError, ValueError):
    """Bad input: a parameter, a file, an unknown name."""


class NotFound(StudioError, LookupError):
    """A design, project or file that does not exist."""


class ModelMissing(StudioError):
    """A catalogue model has no local weights; the message says how to get them."""


class ResourceExhausted(StudioError):
    """Out of GPU memory or disk space; nothing already saved was changed."""
