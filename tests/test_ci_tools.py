"""In CI every optional tool the suite can use must be installed, so no test is skipped there by accident."""
from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only CI must have every tool")
@pytest.mark.parametrize(
    "what, present",
    [
        ("Debian chromium", lambda: shutil.which("/usr/bin/chromium") is not None),
        ("gltf-validator (npm)", lambda: (ROOT / ".ci" / "node_modules" / "gltf-validator").is_dir()),
        ("node", lambda: shutil.which("node") is not None),
        ("PostgreSQL server (Debian postgresql)", lambda: bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))),
        ("offscreen OpenGL (Mesa EGL)", lambda: __import__("pipelines.render", fromlist=["gl_available"]).gl_available()[0]),
    ],
)
def test_tool_is_installed_in_ci(what, present):
    assert present(), f"{what} is missing: .ci/run must install it"
