"""LoRA adapters by name: where they come from (``AdapterSource``) and loading them into a pipeline.

A source maps a name to a safetensors file; today a folder, later the brand-guard vault (which
decrypts and logs every read) plugs in through the same two methods. Loading uses diffusers'
adapter API (``load_lora_weights(..., adapter_name=)``, ``set_adapters(names, weights)``).
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import InvalidInput

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
MIN_WEIGHT, MAX_WEIGHT = -2.0, 2.0


@dataclass(frozen=True)
class AdapterSpec:
    """A requested adapter and its weight (1.0 = as trained)."""

    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class AdapterWeights:
    """What a source hands over: the tensors and the hash that identifies them."""

    name: str
    sha256: str
    state_dict: dict


@runtime_checkable
class AdapterSource(Protocol):
    """Anything that lists adapter names and hands over their weights (folder, vault, …)."""

    def names(self) -> list[str]: ...

    def load(self, name: str) -> AdapterWeights: ...


class CombinedAdapterSource:
    """Several sources as one: names from all of them, each name loaded from the first that has it."""

    def __init__(self, sources: list):
        self.sources = list(sources)

    def names(self) -> list[str]:
        return sorted({name for source in self.sources for name in source.names()})

    def load(self, name: str) -> AdapterWeights:
        for source in self.sources:
            if name in source.names():
                return source.load(name)
        return self.sources[-1].load(name)  # the last source raises its own "unknown adapter" error


class DirectoryAdapterSource:
    """Adapters as ``<dir>/<name>.safetensors``; nothing else is read (no pickles)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.safetensors") if NAME_RE.match(p.stem))

    def load(self, name: str) -> AdapterWeights:
        from safetensors.torch import load

        path = self.root / f"{name}.safetensors"
        if not NAME_RE.match(name) or not path.is_file():
            raise InvalidInput(unknown_message(name, self.names(), self.root))
        data = path.read_bytes()
        try:
            state = load(data)
        except Exception as exc:  # a corrupt or non-safetensors file
            raise InvalidInput(f"adapter {name!r}: {path} is not a readable safetensors file ({exc})") from None
        return AdapterWeights(name=name, sha256=hashlib.sha256(data).hexdigest(), state_dict=state)


def unknown_message(name: str, known: list[str], where) -> str:
    have = ", ".join(known) if known else "none"
    return f"adapter {name!r} is not known; available adapters in {where}: {have}"


def parse_adapter(text: str) -> AdapterSpec:
    """``NAME`` or ``NAME:WEIGHT`` -> ``AdapterSpec``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"adapter {text!r}: write NAME or NAME:WEIGHT, e.g. house-style:0.8")
    name, _, weight = text.strip().partition(":")
    try:
        value = float(weight) if weight.strip() else 1.0
    except ValueError:
        raise InvalidInput(f"adapter {text!r}: weight {weight!r} is not a number") from None
    return AdapterSpec(name.strip(), value)


def parse_adapters(items) -> list[AdapterSpec]:
    """Specs from strings (``"a:0.5"``, also comma-separated), ``(name, weight)`` pairs or specs."""
    out: list[AdapterSpec] = []
    for item in items or []:
        if isinstance(item, AdapterSpec):
            out.append(item)
        elif isinstance(item, dict):
            out.append(AdapterSpec(str(item.get("name", "")), float(item.get("weight", 1.0))))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            out.append(AdapterSpec(str(item[0]), float(item[1])))
        elif isinstance(item, str):
            out += [parse_adapter(part) for part in item.split(",") if part.strip()]
        else:
            raise InvalidInput(f"adapter {item!r}: write NAME or NAME:WEIGHT")
    return out


def check_adapters(specs: list[AdapterSpec], source: AdapterSource | None) -> list[AdapterSpec]:
    """Names known to the source, weights finite and in range, no name twice; raise ``InvalidInput``."""
    seen = set()
    known = source.names() if source is not None else []
    for spec in specs:
        if not NAME_RE.match(spec.name):
            raise InvalidInput(f"adapter name {spec.name!r}: use letters, digits, '-' and '_' (at most 64)")
        if spec.name in seen:
            raise InvalidInput(f"adapter {spec.name!r} is given twice")
        seen.add(spec.name)
        if not math.isfinite(spec.weight) or not MIN_WEIGHT <= spec.weight <= MAX_WEIGHT:
            raise InvalidInput(f"adapter {spec.name!r}: weight must be between {MIN_WEIGHT} and {MAX_WEIGHT}, "
                               f"got {spec.weight!r}")
        if spec.name not in known:
            raise InvalidInput(unknown_message(spec.name, known, getattr(source, "root", "the adapter source")))
    return specs


class AdapterSet:
    """The adapters loaded into one pipeline (and every pipeline sharing its modules via ``from_pipe``)."""

    def __init__(self):
        self.loaded: dict[str, str] = {}  # adapter name inside the pipeline -> sha256

    @staticmethod
    def _internal_name(weights: AdapterWeights) -> str:
        # keyed by content: a file replaced under the same name is loaded afresh, never confused
        return f"{weights.name.replace('-', '_')}_{weights.sha256[:12]}"

    def activate(self, pipe, specs: list[AdapterSpec], source: AdapterSource | None) -> list[dict]:
        """Load what is missing, then set exactly ``specs`` active; returns what to record per image."""
        if not specs:
            if self.loaded:
                pipe.disable_lora()
            return []
        names, weights, record = [], [], []
        for spec in specs:
            w = source.load(spec.name)
            internal = self._internal_name(w)
            if internal not in self.loaded:
                pipe.load_lora_weights(dict(w.state_dict), adapter_name=internal)
                self.loaded[internal] = w.sha256
            names.append(internal)
            weights.append(float(spec.weight))
            record.append({"name": spec.name, "weight": float(spec.weight), "sha256": w.sha256})
        pipe.enable_lora()
        pipe.set_adapters(names, adapter_weights=weights)
        return record


__all__ = [
    "AdapterSource", "AdapterSpec", "AdapterWeights", "AdapterSet", "DirectoryAdapterSource",
    "parse_adapter", "parse_adapters", "check_adapters",
]
