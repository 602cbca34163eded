"""Small helpers shared by test files (import as `from helpers import ...`)."""
from __future__ import annotations

from pathlib import Path


def snapshot_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, to prove that nothing was written or changed."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


VALIDATOR = Path(__file__).resolve().parents[1] / ".ci" / "node_modules" / "gltf-validator"


def validate_glb(path: Path) -> None:
    """Khronos glTF-Validator finds no errors in the GLB at ``path`` (skipped where .ci/run has not
    installed it; tests/test_ci_tools.py fails CI when it is missing)."""
    import json
    import shutil
    import subprocess

    import pytest

    if not VALIDATOR.exists() or not shutil.which("node"):
        pytest.skip("gltf-validator not installed (.ci/run installs it)")
    script = (
        "const v=require(process.argv[1]);const fs=require('fs');"
        "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])))"
        ".then(r=>{console.log(JSON.stringify(r.issues));process.exit(r.issues.numErrors?1:0)})"
        ".catch(e=>{console.error(e);process.exit(2)})"
    )
    proc = subprocess.run(["node", "-e", script, str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["numErrors"] == 0
