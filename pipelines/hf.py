"""One way to hold a transformers model and its image processor, loaded local-only from safetensors."""
from __future__ import annotations

from pathlib import Path


class ProcessorModel:
    """A transformers model plus its image processor; subclasses name the Auto class to load with."""

    auto_class: str = "AutoModel"

    def __init__(self, model, processor, *, model_name: str, revision: str = "local", device: str = "cpu"):
        self.model = model
        self.processor = processor
        self.model_name = model_name
        self.revision = revision
        self.device = device

    @classmethod
    def load(cls, path: str | Path, *, model_name: str, revision: str = "local", device: str = "cpu"):
        """Load with transformers' own loaders, local files only, safetensors only."""
        from .devices import quiet_libraries

        quiet_libraries()
        import transformers

        auto = getattr(transformers, cls.auto_class)
        model = auto.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        processor = transformers.AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
        return cls(model.to(device).eval(), processor, model_name=model_name, revision=revision, device=device)
