"""TripoSG (VAST, MIT) ported here: image -> detailed shape, and the scribble variant (sketch + prompt -> shape).

``TripoSGBackend.load(folder)`` reads the published diffusers-style folder strictly (``loading.py``);
the networks are in ``models.py``, surface extraction in ``extract.py``.
"""
from .backend import Sampling, TripoSGBackend
from .loading import CheckpointMismatch, load_components
from .models import TripoSGDiTModel, TripoSGVAEModel

__all__ = ["CheckpointMismatch", "Sampling", "TripoSGBackend", "TripoSGDiTModel", "TripoSGVAEModel", "load_components"]
