"""Fault injection for tests of the batch runner (``STUDIO_BATCH_FAULTS``); empty in normal use.

Comma-separated ``name=value`` items:
``hang_after_designs=N`` (the N-th item of this process stops after its designs are stored: it
touches ``OUT/.fault-hang`` and sleeps, so a test can SIGKILL it at the worst moment),
``oom_batch_above=K`` (generation raises a CUDA-style OOM whenever more than K images are asked for
at once), ``oom_line=L`` (row L always runs out of memory), ``enospc_after=N`` (the N+1-th write into
the output folder raises ``OSError(ENOSPC)``), ``slow=S`` (sleep S seconds per item).
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

ENV = "STUDIO_BATCH_FAULTS"


class Faults:
    def __init__(self, spec: str = ""):
        self.spec = spec or ""
        values: dict[str, str] = {}
        for part in self.spec.split(","):
            if part.strip():
                name, _, value = part.partition("=")
                values[name.strip()] = value.strip()
        self.hang_after_designs = int(values["hang_after_designs"]) if "hang_after_designs" in values else None
        self.oom_batch_above = int(values["oom_batch_above"]) if "oom_batch_above" in values else None
        self.oom_lines = {int(v) for v in values.get("oom_line", "").split("+") if v}
        self.enospc_after = int(values["enospc_after"]) if "enospc_after" in values else None
        self.slow = float(values.get("slow", 0) or 0)
        self.items_with_designs = 0
        self.writes = 0

    @classmethod
    def from_env(cls) -> "Faults":
        return cls(os.environ.get(ENV, ""))

    def __bool__(self) -> bool:
        return bool(self.spec.strip())

    def check_oom(self, line: int, n: int) -> None:
        """Called from the denoising-step callback, i.e. inside the model call, where a real OOM happens."""
        if line in self.oom_lines or (self.oom_batch_above is not None and n > self.oom_batch_above):
            import torch

            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {n} images (injected fault)")

    def after_designs(self, out_dir: Path) -> None:
        self.items_with_designs += 1
        if self.slow:
            time.sleep(self.slow)
        if self.hang_after_designs is not None and self.items_with_designs == self.hang_after_designs:
            (Path(out_dir) / ".fault-hang").write_text(str(os.getpid()))
            time.sleep(600)

    def before_write(self) -> None:
        if self.enospc_after is not None and self.writes >= self.enospc_after:
            raise OSError(errno.ENOSPC, "No space left on device (injected fault)")
        self.writes += 1
