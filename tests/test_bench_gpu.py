"""bench/gpu.py: the smoke run goes through every section on CPU and prints the full table; without
CUDA and without --smoke the script says so and exits 2."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu.py"


def run(*args, timeout=900):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_smoke_run_fills_every_row_of_the_table():
    done = run("--smoke")
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout[done.stdout.index("| section | measurement"):]
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:] if line.startswith("|")]
    cells = {(r[0].strip(), r[1].strip()): [c.strip() for c in r[2:]] for r in rows}
    expected = [("sdxl", "64² 2 steps, SDPA"), ("sdxl", "64² 2 steps, torch.compile"),
                ("flux-schnell", "64² 2 steps, SDPA"), ("flux-schnell", "64² 2 steps, torch.compile"),
                ("triposr", "s/mesh, grid 32"), ("e2e", "prompt → 4 concepts (64², 2 steps) → textured GLB")]
    expected += [(f"memory {m}", f"peak VRAM, {mode}") for m in ("sdxl", "flux")
                 for mode in ("none", "VAE slicing+tiling", "model CPU offload")]
    assert sorted(cells) == sorted(expected)
    for key, (studio, bare, ratio, note) in cells.items():
        assert "failed" not in note and "skipped" not in note, (key, note)
        if not key[0].startswith("memory"):  # timed rows: studio and bare seconds and their ratio
            assert re.fullmatch(r"\d+\.\d\d s", studio) and re.fullmatch(r"\d+\.\d\d s", bare), (key, studio, bare)
            assert float(ratio) > 0
    assert "textured=True" in cells[("e2e", "prompt → 4 concepts (64², 2 steps) → textured GLB")][3]


def test_without_cuda_the_script_says_so():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    done = run(timeout=120)
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr and "--smoke" in done.stderr
