"""Use cases shared by the UI and the CLI, wired together by one ``Studio`` object."""
from .studio import Studio

__all__ = ["Studio"]
