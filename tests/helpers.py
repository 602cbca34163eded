"""Small helpers shared by test files (import as `from helpers import ...`)."""
from __future__ import annotations

from pathlib import Path


def snapshot_files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, to prove that nothing was written or changed."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
