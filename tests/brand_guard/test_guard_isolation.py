"""brand_guard stays governance-only: importing every module pulls in no torch, gradio, design_studio or pipelines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULES = ["errors", "fsutil", "canonical", "vault", "egress", "provenance", "memorization", "ledger", "ratios"]


def test_no_forbidden_imports():
    code = (
        "import sys, numpy as np\n"
        + "".join(f"import brand_guard.{m}\n" for m in MODULES)
        + "from brand_guard import provenance\n"
        + "from PIL import Image\n"
        + "provenance.detect_watermark(Image.new('RGB', (256, 256)))\n"  # loads the watermark code too
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'gradio', 'design_studio', 'pipelines', 'imwatermark'))\n"
        + "print(','.join(bad))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"forbidden modules imported: {out.stdout.strip()}"


def test_every_module_has_a_docstring():
    import importlib

    for name in MODULES:
        module = importlib.import_module(f"brand_guard.{name}")
        assert module.__doc__ and len(module.__doc__.strip().splitlines()) <= 2, name
