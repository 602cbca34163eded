"""Typed errors raised by the pipelines; each message names the input, its value and what is accepted."""
from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipelines raise on purpose."""


class InvalidInput(PipelineError, ValueError):
    """A parameter or file handed to a pipeline is not acceptable."""


class InvalidImage(InvalidInput):
    """An image file is corrupt, truncated, too large or of a format we do not read."""


class OutOfMemory(PipelineError):
    """The device ran out of memory even after the fallbacks were tried."""
