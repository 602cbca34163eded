"""Content-addressed files under the data dir, written atomically (temp file, fsync, rename)."""
from __future__ import annotations

import errno
import hashlib
from pathlib import Path

from brand_guard.fsutil import atomic_write_bytes

from ..errors import NotFound, ResourceExhausted


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never half.

    A full disk becomes ``ResourceExhausted`` with nothing left behind.
    """
    try:
        atomic_write_bytes(path, data, mode=0o644)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ResourceExhausted(f"the disk holding {Path(path).parent} is full; nothing was saved") from None
        raise


class FileStore:
    """``put`` returns a path like ``ab/abcdef….png`` relative to ``root``; the same bytes, the same path."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, suffix: str) -> tuple[str, str]:
        digest = hashlib.sha256(data).hexdigest()
        rel = f"{digest[:2]}/{digest}{suffix}"
        target = self.root / rel
        if not target.exists():
            atomic_write(target, data)
        return rel, digest

    def path(self, rel: str) -> Path:
        target = (self.root / rel).resolve()
        if self.root.resolve() not in target.parents:
            raise NotFound(f"file {rel!r} is not inside the studio's files")
        if not target.is_file():
            raise NotFound(f"file {rel!r} does not exist")
        return target

    def read(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()
